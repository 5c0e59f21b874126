// Helpers for the GGUF tests: a raw byte builder for hand-made (often malformed) images, a sample model
// with every value type, and a temporary directory.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "gguf/gguf_file.h"
#include "gguf/gguf_writer.h"

namespace tandem::gguf_test {

// Appends little-endian fields; each method returns *this for chaining.
struct Raw {
  std::vector<uint8_t> bytes;

  template <typename T>
  Raw& put(T v) {
    const size_t at = bytes.size();
    bytes.resize(at + sizeof(T));
    std::memcpy(bytes.data() + at, &v, sizeof(T));
    return *this;
  }
  Raw& u8(uint8_t v) { return put(v); }
  Raw& u32(uint32_t v) { return put(v); }
  Raw& u64(uint64_t v) { return put(v); }
  Raw& i64(int64_t v) { return put(v); }
  Raw& str(std::string_view s) {
    u64(s.size());
    bytes.insert(bytes.end(), s.begin(), s.end());
    return *this;
  }
  // Magic, version, tensor count, metadata count.
  Raw& header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
    bytes.insert(bytes.end(), {'G', 'G', 'U', 'F'});
    return u32(version).u64(n_tensors).u64(n_kv);
  }
  Raw& kv_u32(std::string_view key, uint32_t v) { return str(key).u32(4).u32(v); }
  Raw& tensor_info(std::string_view name, const std::vector<int64_t>& dims, uint32_t type, uint64_t offset) {
    str(name).u32(static_cast<uint32_t>(dims.size()));
    for (int64_t d : dims) i64(d);
    return u32(type).u64(offset);
  }
  Raw& pad_to(size_t alignment) {
    bytes.resize((bytes.size() + alignment - 1) / alignment * alignment, 0);
    return *this;
  }
  Raw& zeros(size_t n) {
    bytes.resize(bytes.size() + n, 0);
    return *this;
  }
};

inline Result<std::shared_ptr<GgufModel>> parse(const std::vector<uint8_t>& bytes,
                                                const std::string& name = "test.gguf") {
  return parse_gguf_buffer(bytes.data(), bytes.size(), name);
}

// Asserts that parsing fails with a message naming the buffer and containing every one of `parts`.
inline void expect_error(const std::vector<uint8_t>& bytes, std::initializer_list<std::string_view> parts) {
  auto r = parse(bytes, "bad.gguf");
  ASSERT_FALSE(r.is_ok()) << "parsed a malformed image";
  const std::string& msg = r.status().message();
  EXPECT_EQ(msg.rfind("bad.gguf: ", 0), 0u) << msg;
  for (std::string_view p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "missing '" << p << "' in: " << msg;
}

inline std::vector<uint8_t> iota_bytes(size_t n, uint8_t start = 0) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(start + i);
  return v;
}

// A small valid model: every metadata value type (nested and empty arrays too) and three tensors.
inline GgufWriter sample_writer(uint32_t version = 3) {
  GgufWriter w(version);
  w.set("general.architecture", gguf_str("test"));
  w.set("t.u8", gguf_u8(200));
  w.set("t.i8", gguf_i8(-100));
  w.set("t.u16", gguf_u16(60000));
  w.set("t.i16", gguf_i16(-30000));
  w.set("t.u32", gguf_u32(4000000000u));
  w.set("t.i32", gguf_i32(-2000000000));
  w.set("t.u64", gguf_u64((uint64_t{1} << 63) + 5));
  w.set("t.i64", gguf_i64(-(int64_t{1} << 62)));
  w.set("t.f32", gguf_f32(0.1f));
  w.set("t.f64", gguf_f64(3.25));
  w.set("t.bool", gguf_bool(true));
  w.set("t.string", gguf_str("h\xC3\xA9llo"));
  w.set("t.u32s", gguf_array(GgufValueType::UINT32, {gguf_u32(1), gguf_u32(2), gguf_u32(3)}));
  w.set("t.strings", gguf_str_array({"a", "bc", ""}));
  w.set("t.nested", gguf_array(GgufValueType::ARRAY, {gguf_array(GgufValueType::INT16, {gguf_i16(-1), gguf_i16(2)}),
                                                      gguf_array(GgufValueType::INT16, {})}));
  w.set("t.empty", gguf_array(GgufValueType::FLOAT32, {}));
  w.add_tensor("a", GgmlType::F32, {4, 2}, iota_bytes(32));
  w.add_tensor("b", GgmlType::Q8_0, {32, 1}, iota_bytes(34, 100));
  w.add_tensor("c", GgmlType::BF16, {3}, iota_bytes(6, 200));
  return w;
}

inline std::vector<uint8_t> sample_bytes(uint32_t version = 3) {
  auto r = sample_writer(version).to_bytes();
  EXPECT_TRUE(r.is_ok()) << r.status().message();
  return r.is_ok() ? r.value() : std::vector<uint8_t>{};
}

// A fresh directory under the system temp dir, removed with its contents on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "gguf_test_XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) ADD_FAILURE() << "mkdtemp failed";
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string path() const { return path_.string(); }

 private:
  std::filesystem::path path_;
};

}  // namespace tandem::gguf_test
