// GgufModel: maps the file(s) of a model, parses each with gguf_detail::parse_image, and merges split parts.
#include "gguf/gguf_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <unordered_map>

#include "gguf/gguf_internal.h"

namespace tandem {

using gguf_detail::GgufError;
using gguf_detail::ParsedImage;
namespace fs = std::filesystem;

namespace {

// A read-only private mapping of a whole file, unmapped on destruction.
class Mapping {
 public:
  static std::unique_ptr<Mapping> map(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw GgufError(path + ": cannot open: " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      throw GgufError(path + ": cannot stat: " + std::strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      throw GgufError(path + ": not a regular file");
    }
    if (st.st_size == 0) {
      ::close(fd);
      throw GgufError(path + ": empty file (0 bytes), not a GGUF file");
    }
    const auto size = static_cast<size_t>(st.st_size);
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    const int err = errno;
    ::close(fd);
    if (p == MAP_FAILED) {
      throw GgufError(path + ": cannot mmap " + std::to_string(size) + " bytes: " + std::strerror(err));
    }
    return std::unique_ptr<Mapping>(new Mapping(static_cast<const uint8_t*>(p), size));
  }
  ~Mapping() { ::munmap(const_cast<uint8_t*>(data_), size_); }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  Mapping(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  const uint8_t* data_;
  size_t size_;
};

// `NAME-00001-of-00003.gguf`, the names llama-gguf-split writes (`%s-%05d-of-%05d.gguf`).
struct SplitName {
  std::string prefix;  // NAME (may include a directory)
  int part;            // 1-based
  int count;
};

std::optional<SplitName> parse_split_name(const std::string& path) {
  constexpr std::string_view kExt = ".gguf";
  constexpr size_t kTail = 15 + kExt.size();  // "-00001-of-00003.gguf"
  if (path.size() <= kTail || path.compare(path.size() - kExt.size(), kExt.size(), kExt) != 0) return std::nullopt;
  const std::string_view tail = std::string_view(path).substr(path.size() - kTail, 15);
  auto number = [&](size_t at) {
    int n = 0;
    for (size_t i = at; i < at + 5; ++i) {
      if (tail[i] < '0' || tail[i] > '9') return -1;
      n = n * 10 + (tail[i] - '0');
    }
    return n;
  };
  const int part = number(1);
  const int count = number(10);
  if (tail[0] != '-' || tail.substr(6, 4) != "-of-" || part < 0 || count < 0) return std::nullopt;
  return SplitName{path.substr(0, path.size() - kTail), part, count};
}

std::string split_part_path(const SplitName& s, int part) {
  char suffix[32];
  std::snprintf(suffix, sizeof suffix, "-%05d-of-%05d.gguf", part, s.count);
  return s.prefix + suffix;
}

// The file(s) to open for `path`: itself, or all parts of its split set, or the model in a directory.
std::vector<std::string> resolve_files(const std::string& path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) throw GgufError(path + ": no such file or directory");

  std::string file = path;
  if (fs::is_directory(st)) {
    std::vector<std::string> ggufs;
    for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->path().extension() == ".gguf" && it->is_regular_file(ec)) ggufs.push_back(it->path().string());
    }
    if (ec) throw GgufError(path + ": cannot list directory: " + ec.message());
    if (ggufs.empty()) throw GgufError(path + ": directory holds no .gguf file");
    std::sort(ggufs.begin(), ggufs.end());
    // One model: a single file, or parts sharing one NAME and count.
    const auto first = parse_split_name(ggufs.front());
    for (const std::string& g : ggufs) {
      const auto s = parse_split_name(g);
      const bool same = first && s && s->prefix == first->prefix && s->count == first->count;
      if (ggufs.size() > 1 && !same) {
        throw GgufError(path + ": directory holds more than one model (" + fs::path(ggufs.front()).filename().string() +
                        ", " + fs::path(g).filename().string() + "); open one file instead");
      }
    }
    file = first ? split_part_path(*first, 1) : ggufs.front();
  }

  const auto split = parse_split_name(file);
  if (!split) return {file};
  if (split->count < 1 || split->part < 1 || split->part > split->count) {
    throw GgufError(file + ": split file name says part " + std::to_string(split->part) + " of " +
                    std::to_string(split->count));
  }
  std::vector<std::string> files;
  for (int i = 1; i <= split->count; ++i) {
    std::string part = split_part_path(*split, i);
    if (!fs::is_regular_file(part, ec)) {
      throw GgufError(part + ": missing part " + std::to_string(i) + " of " + std::to_string(split->count) +
                      " of split model " + path);
    }
    files.push_back(std::move(part));
  }
  return files;
}

const GgufValue* find_in(const ParsedImage& img, const std::string& key) {
  for (const auto& [k, v] : img.metadata) {
    if (k == key) return &v;
  }
  return nullptr;
}

// Checks an integer split.* key of part `file` against `expected` (absent keys are accepted).
void check_split_key(const ParsedImage& img, const std::string& file, const std::string& key, int64_t expected) {
  const GgufValue* v = find_in(img, key);
  if (!v) return;
  const auto got = v->as_int();
  if (!got || v->type == GgufValueType::BOOL) throw GgufError(file + ": metadata key '" + key + "' is not an integer");
  if (*got != expected) {
    throw GgufError(file + ": metadata key '" + key + "' is " + std::to_string(*got) + ", expected " +
                    std::to_string(expected));
  }
}

// After merging: a lone file must not claim to be part of a set; split.tensors.count must match.
void check_split_totals(const GgufModel& model, int64_t n_parts) {
  const std::string& file = model.files().front();
  if (const GgufValue* count = model.find("split.count"); count && n_parts == 1 && count->as_int() != 1) {
    throw GgufError(file + ": metadata says split.count = " + count->to_display_string() +
                    " but the name does not follow NAME-00001-of-0000N.gguf, so the other parts cannot be found");
  }
  if (const GgufValue* total = model.find("split.tensors.count")) {
    const auto expected = total->as_int();
    if (!expected || *expected != static_cast<int64_t>(model.tensors().size())) {
      throw GgufError(file + ": metadata says split.tensors.count = " + total->to_display_string() + " but the " +
                      std::to_string(n_parts) + " part(s) hold " + std::to_string(model.tensors().size()) + " tensors");
    }
  }
}

}  // namespace

struct GgufModel::Impl {
  uint32_t version = 0;
  std::vector<std::string> files;
  std::vector<std::unique_ptr<Mapping>> mappings;
  std::vector<std::pair<std::string, GgufValue>> metadata;
  std::unordered_map<std::string, size_t> key_index;
  std::vector<GgufTensorInfo> tensors;
  std::unordered_map<std::string, size_t> tensor_index;
  uint64_t total_bytes = 0;

  // Takes the parsed parts (images[i] from files[i]); the first provides the metadata.
  void merge(std::vector<ParsedImage> images) {
    version = images.front().version;
    metadata = std::move(images.front().metadata);
    for (size_t i = 0; i < metadata.size(); ++i) key_index.emplace(metadata[i].first, i);
    for (size_t p = 0; p < images.size(); ++p) {
      for (GgufTensorInfo& t : images[p].tensors) {
        const auto [it, inserted] = tensor_index.emplace(t.name, tensors.size());
        if (!inserted) {
          const GgufTensorInfo& prev = tensors[it->second];
          throw GgufError(files[p] + ": tensor '" + t.name + "' also appears in " +
                          files[static_cast<size_t>(prev.file_index)]);
        }
        total_bytes += t.n_bytes;
        tensors.push_back(std::move(t));
      }
    }
  }
};

GgufModel::GgufModel() : impl_(std::make_unique<Impl>()) {}
GgufModel::~GgufModel() = default;

Result<std::shared_ptr<GgufModel>> GgufModel::open(const std::string& path) {
  try {
    std::shared_ptr<GgufModel> model(new GgufModel());
    Impl& m = *model->impl_;
    m.files = resolve_files(path);
    const auto n_parts = static_cast<int64_t>(m.files.size());
    std::vector<ParsedImage> images;
    for (size_t i = 0; i < m.files.size(); ++i) {
      m.mappings.push_back(Mapping::map(m.files[i]));
      const Mapping& map = *m.mappings.back();
      images.push_back(gguf_detail::parse_image(map.data(), map.size(), m.files[i], static_cast<int>(i)));
      if (n_parts > 1) {
        check_split_key(images.back(), m.files[i], "split.count", n_parts);
        check_split_key(images.back(), m.files[i], "split.no", static_cast<int64_t>(i));
      }
    }
    m.merge(std::move(images));
    check_split_totals(*model, n_parts);
    return model;
  } catch (const GgufError& e) {
    return Status::error(e.what());
  } catch (const std::exception& e) {  // filesystem or allocation failures
    return Status::error(path + ": " + e.what());
  }
}

Result<std::shared_ptr<GgufModel>> parse_gguf_buffer(const uint8_t* bytes, size_t size, const std::string& name) {
  try {
    std::shared_ptr<GgufModel> model(new GgufModel());
    GgufModel::Impl& m = *model->impl_;
    m.files = {name};
    std::vector<ParsedImage> images;
    images.push_back(gguf_detail::parse_image(bytes, size, name, 0));
    m.merge(std::move(images));
    return model;
  } catch (const GgufError& e) {
    return Status::error(e.what());
  } catch (const std::exception& e) {
    return Status::error(name + ": " + e.what());
  }
}

uint32_t GgufModel::version() const { return impl_->version; }
const std::vector<std::string>& GgufModel::files() const { return impl_->files; }
const std::vector<std::pair<std::string, GgufValue>>& GgufModel::metadata() const { return impl_->metadata; }

const GgufValue* GgufModel::find(const std::string& key) const {
  const auto it = impl_->key_index.find(key);
  return it == impl_->key_index.end() ? nullptr : &impl_->metadata[it->second].second;
}

std::optional<int64_t> GgufModel::get_int(const std::string& key) const {
  const GgufValue* v = find(key);
  return v ? v->as_int() : std::nullopt;
}
std::optional<double> GgufModel::get_float(const std::string& key) const {
  const GgufValue* v = find(key);
  return v ? v->as_float() : std::nullopt;
}
std::optional<bool> GgufModel::get_bool(const std::string& key) const {
  const GgufValue* v = find(key);
  return v ? v->as_bool() : std::nullopt;
}
std::optional<std::string> GgufModel::get_string(const std::string& key) const {
  const GgufValue* v = find(key);
  return v ? v->as_string() : std::nullopt;
}

const std::vector<GgufTensorInfo>& GgufModel::tensors() const { return impl_->tensors; }

const GgufTensorInfo* GgufModel::find_tensor(const std::string& name) const {
  const auto it = impl_->tensor_index.find(name);
  return it == impl_->tensor_index.end() ? nullptr : &impl_->tensors[it->second];
}

uint64_t GgufModel::total_tensor_bytes() const { return impl_->total_bytes; }

}  // namespace tandem
