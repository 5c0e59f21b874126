// GGUF reader: a model's metadata and tensor table from one GGUF file or a set of split files.
//
// open() memory-maps the file(s) read-only and validates everything before returning: header magic and
// version (2 or 3), every metadata key/value (all GGUF value types, nested arrays), every tensor info
// (name, dims, type id, offset), the alignment (general.alignment, default 32), and that every tensor's
// bytes lie inside its file. A split model (`NAME-00001-of-0000N.gguf`, or a directory holding such parts)
// is opened as one: the metadata is the first part's, the tensors the union of all parts (a missing part,
// a tensor name in two parts, or split.count / split.no / split.tensors.count disagreeing with the set
// are errors). Any problem yields a Status naming the file and the problem; a malformed file never causes
// a crash or a read outside the mapping. The GgufModel owns the mappings; GgufTensorInfo::data stays
// valid while it lives.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/status.h"
#include "gguf/ggml_type.h"

namespace tandem {

// GGUF metadata value types, as numbered in the format.
enum class GgufValueType : uint32_t {
  UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6, BOOL = 7,
  STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};

struct GgufValue;
struct GgufArray {
  GgufValueType element_type;
  std::vector<GgufValue> values;
};

// One metadata value. Integers of every width are kept with their declared type.
struct GgufValue {
  GgufValueType type;
  std::variant<uint64_t, int64_t, double, bool, std::string, std::shared_ptr<GgufArray>> value;

  // Conversions; nullopt when the stored type does not convert (e.g. a string asked as int).
  std::optional<int64_t> as_int() const;      // any integer type (uint64 above INT64_MAX -> nullopt), bool
  std::optional<double> as_float() const;     // float32/float64 and any integer type
  std::optional<bool> as_bool() const;        // bool
  std::optional<std::string> as_string() const;
  const GgufArray* as_array() const;          // nullptr unless an array
  std::string to_display_string(size_t max_array_items = 8) const;  // for `tandem info`
};

struct GgufTensorInfo {
  std::string name;
  GgmlType type;
  std::vector<int64_t> dims;   // ne[0] first: ne[0] is the contiguous (row) dimension, as in ggml
  int64_t n_elements;
  size_t n_bytes;
  const uint8_t* data;         // inside the mapping of file `file_index`
  int file_index;
  uint64_t file_offset;        // absolute offset in that file
};

class GgufModel {
 public:
  // `path`: a .gguf file, the first (or any) part of a split set, or a directory with one model's parts.
  static Result<std::shared_ptr<GgufModel>> open(const std::string& path);
  ~GgufModel();
  GgufModel(const GgufModel&) = delete;
  GgufModel& operator=(const GgufModel&) = delete;

  uint32_t version() const;
  const std::vector<std::string>& files() const;
  // Metadata in file order (the first part's keys; split.* keys included).
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const;
  const GgufValue* find(const std::string& key) const;
  std::optional<int64_t> get_int(const std::string& key) const;
  std::optional<double> get_float(const std::string& key) const;
  std::optional<bool> get_bool(const std::string& key) const;
  std::optional<std::string> get_string(const std::string& key) const;

  const std::vector<GgufTensorInfo>& tensors() const;
  const GgufTensorInfo* find_tensor(const std::string& name) const;
  uint64_t total_tensor_bytes() const;

 private:
  GgufModel();
  friend Result<std::shared_ptr<GgufModel>> parse_gguf_buffer(const uint8_t*, size_t, const std::string&);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Parses a GGUF image already in memory (used by the fuzzer and tests). `name` is used in messages.
// The returned model refers to `bytes`, which must outlive it.
Result<std::shared_ptr<GgufModel>> parse_gguf_buffer(const uint8_t* bytes, size_t size, const std::string& name);

}  // namespace tandem
