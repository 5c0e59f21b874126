// libFuzzer entry point for the GGUF reader. parse_gguf_buffer must return an error or a model whose
// tensors lie inside the input; it must never crash or read outside the input (ASan/UBSan catch that,
// since libFuzzer hands over a heap copy of exactly `size` bytes).
#include <cstddef>
#include <cstdint>

#include "gguf/gguf_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto result = tandem::parse_gguf_buffer(data, size, "fuzz.gguf");
  if (!result.is_ok()) {
    if (result.status().message().rfind("fuzz.gguf: ", 0) != 0) __builtin_trap();  // must name the file
    return 0;
  }
  const tandem::GgufModel& model = **result;
  for (const auto& [key, value] : model.metadata()) {
    if (model.find(key) != &value) __builtin_trap();
    (void)value.to_display_string();
    (void)value.as_int();
    (void)value.as_float();
  }
  volatile uint8_t sink = 0;
  for (const tandem::GgufTensorInfo& t : model.tensors()) {
    if (t.n_bytes == 0 || t.file_offset + t.n_bytes > size || t.data != data + t.file_offset) __builtin_trap();
    if (model.find_tensor(t.name) != &t) __builtin_trap();
    sink = sink ^ t.data[0] ^ t.data[t.n_bytes - 1];  // out-of-bounds data would trip ASan here
  }
  (void)sink;
  return 0;
}
