#include "kernels/host_convert.h"

#include <exception>

#include <fmt/format.h>

#include "kernels/cpu/quant.h"

namespace tandem {

bool is_computable_type(GgmlType type) { return cpu::is_computable(type); }

Result<std::vector<float>> dequantize_to_f32(const Tensor& host) {
  if (!host.device.is_cpu()) return Status::error(fmt::format("{} is not in host memory", host.name));
  if (!cpu::is_computable(host.type)) {
    return Status::error(fmt::format("tensor '{}' has type {}, which Tandem cannot compute with yet", host.name,
                                     ggml_type_name(host.type)));
  }
  try {
    std::vector<float> out(static_cast<size_t>(host.cols() * host.rows() * host.slices()));
    for (int64_t s = 0; s < host.slices(); ++s) {
      for (int64_t r = 0; r < host.rows(); ++r) {
        cpu::dequantize_row(host.type, host.row(r, s), out.data() + (s * host.rows() + r) * host.cols(), host.cols());
      }
    }
    return out;
  } catch (const std::exception& e) {
    return Status::error(fmt::format("{}: {}", host.name, e.what()));
  }
}

}  // namespace tandem
