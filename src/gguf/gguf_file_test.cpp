// GGUF reader/writer: round trips, value conversions and display, alignment, file opening, real fixtures.
// (Error paths: gguf_errors_test.cpp; split sets: gguf_split_test.cpp.) Suite names start with `gguf_`
// so that `ctest -R gguf` selects them.
#include "gguf/gguf_file.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>

#include "gguf/gguf_test_util.h"
#include "gguf/gguf_writer.h"

namespace tandem {
namespace {

using gguf_test::iota_bytes;
using gguf_test::parse;
using gguf_test::sample_bytes;
using gguf_test::TempDir;

void expect_sample(const GgufModel& m) {
  EXPECT_EQ(m.metadata().size(), 17u);
  EXPECT_EQ(m.get_string("general.architecture"), "test");
  EXPECT_EQ(m.find("t.u8")->type, GgufValueType::UINT8);
  EXPECT_EQ(m.get_int("t.u8"), 200);
  EXPECT_EQ(m.get_int("t.i8"), -100);
  EXPECT_EQ(m.get_int("t.u16"), 60000);
  EXPECT_EQ(m.get_int("t.i16"), -30000);
  EXPECT_EQ(m.get_int("t.u32"), 4000000000);
  EXPECT_EQ(m.get_int("t.i32"), -2000000000);
  EXPECT_EQ(m.get_int("t.u64"), std::nullopt);  // above INT64_MAX
  EXPECT_EQ(std::get<uint64_t>(m.find("t.u64")->value), (uint64_t{1} << 63) + 5);
  EXPECT_EQ(m.get_int("t.i64"), -(int64_t{1} << 62));
  EXPECT_EQ(m.get_float("t.f32"), double{0.1f});
  EXPECT_EQ(m.find("t.f32")->type, GgufValueType::FLOAT32);
  EXPECT_EQ(m.get_float("t.f64"), 3.25);
  EXPECT_EQ(m.get_bool("t.bool"), true);
  EXPECT_EQ(m.get_string("t.string"), "h\xC3\xA9llo");

  const GgufArray* u32s = m.find("t.u32s")->as_array();
  ASSERT_NE(u32s, nullptr);
  EXPECT_EQ(u32s->element_type, GgufValueType::UINT32);
  ASSERT_EQ(u32s->values.size(), 3u);
  EXPECT_EQ(u32s->values[2].as_int(), 3);
  const GgufArray* strings = m.find("t.strings")->as_array();
  ASSERT_NE(strings, nullptr);
  ASSERT_EQ(strings->values.size(), 3u);
  EXPECT_EQ(strings->values[1].as_string(), "bc");
  EXPECT_EQ(strings->values[2].as_string(), "");
  const GgufArray* nested = m.find("t.nested")->as_array();
  ASSERT_NE(nested, nullptr);
  ASSERT_EQ(nested->values.size(), 2u);
  ASSERT_NE(nested->values[0].as_array(), nullptr);
  EXPECT_EQ(nested->values[0].as_array()->element_type, GgufValueType::INT16);
  EXPECT_EQ(nested->values[0].as_array()->values[0].as_int(), -1);
  EXPECT_TRUE(nested->values[1].as_array()->values.empty());
  EXPECT_EQ(m.find("t.empty")->as_array()->element_type, GgufValueType::FLOAT32);

  ASSERT_EQ(m.tensors().size(), 3u);
  const GgufTensorInfo* a = m.find_tensor("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->type, GgmlType::F32);
  EXPECT_EQ(a->dims, (std::vector<int64_t>{4, 2}));
  EXPECT_EQ(a->n_elements, 8);
  EXPECT_EQ(a->n_bytes, 32u);
  EXPECT_EQ(std::vector<uint8_t>(a->data, a->data + 32), iota_bytes(32));
  const GgufTensorInfo* b = m.find_tensor("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->type, GgmlType::Q8_0);
  EXPECT_EQ(b->n_bytes, 34u);
  EXPECT_EQ(b->data[0], 100);
  EXPECT_EQ(b->file_offset % 32, 0u);
  EXPECT_EQ(m.find_tensor("c")->n_bytes, 6u);
  EXPECT_EQ(m.find_tensor("missing"), nullptr);
  EXPECT_EQ(m.total_tensor_bytes(), 32u + 34u + 6u);
}

TEST(gguf_file, RoundTripsEveryValueType) {
  const auto bytes = sample_bytes();
  auto m = parse(bytes);
  ASSERT_TRUE(m.is_ok()) << m.status().message();
  EXPECT_EQ((*m)->version(), 3u);
  EXPECT_EQ((*m)->files(), std::vector<std::string>{"test.gguf"});
  expect_sample(**m);
  // Metadata keeps file order.
  EXPECT_EQ((*m)->metadata()[0].first, "general.architecture");
  EXPECT_EQ((*m)->metadata()[16].first, "t.empty");
}

TEST(gguf_file, ReadsVersion2AndVersion3Alike) {
  const auto v2 = sample_bytes(2);
  const auto v3 = sample_bytes(3);
  ASSERT_EQ(v2.size(), v3.size());
  EXPECT_EQ(v2[4], 2);
  auto m2 = parse(v2);
  ASSERT_TRUE(m2.is_ok()) << m2.status().message();
  EXPECT_EQ((*m2)->version(), 2u);
  expect_sample(**m2);
}

TEST(gguf_file, HonoursGeneralAlignment) {
  for (uint32_t alignment : {1u, 8u, 64u, 4096u}) {
    GgufWriter w;
    w.set("general.alignment", gguf_u32(alignment));
    w.add_tensor("x", GgmlType::F16, {3}, iota_bytes(6));
    w.add_tensor("y", GgmlType::I8, {5}, iota_bytes(5, 50));
    auto bytes = w.to_bytes();
    ASSERT_TRUE(bytes.is_ok()) << bytes.status().message();
    auto m = parse(*bytes);
    ASSERT_TRUE(m.is_ok()) << m.status().message();
    for (const GgufTensorInfo& t : (*m)->tensors()) EXPECT_EQ(t.file_offset % alignment, 0u) << t.name;
    const GgufTensorInfo* y = (*m)->find_tensor("y");
    const uint64_t x_span = (6 + alignment - 1) / alignment * alignment;  // x's 6 bytes, padded
    EXPECT_EQ(y->file_offset, (*m)->find_tensor("x")->file_offset + x_span);
    EXPECT_EQ(std::vector<uint8_t>(y->data, y->data + 5), iota_bytes(5, 50));
  }
}

TEST(gguf_file, DataSectionStartsAtAlignedOffsetAfterHeader) {
  GgufWriter w;
  w.add_tensor("x", GgmlType::F32, {1}, iota_bytes(4));
  auto bytes = w.to_bytes();
  ASSERT_TRUE(bytes.is_ok());
  const size_t header = 4 + 4 + 8 + 8 + (8 + 1 + 4 + 8 + 4 + 8);  // 45 bytes -> data at 64
  auto m = parse(*bytes);
  ASSERT_TRUE(m.is_ok()) << m.status().message();
  EXPECT_EQ((*m)->tensors()[0].file_offset, (header + 31) / 32 * 32);
  EXPECT_EQ(bytes->size(), 96u);  // data padded to the alignment
}

TEST(gguf_file, ParsesImageWithoutTensors) {
  GgufWriter w;
  w.set("k", gguf_str("v"));
  auto bytes = w.to_bytes();
  ASSERT_TRUE(bytes.is_ok());
  auto m = parse(*bytes);
  ASSERT_TRUE(m.is_ok()) << m.status().message();
  EXPECT_TRUE((*m)->tensors().empty());
  EXPECT_EQ((*m)->total_tensor_bytes(), 0u);
}

TEST(gguf_value, Conversions) {
  EXPECT_EQ(gguf_bool(true).as_int(), 1);
  EXPECT_EQ(gguf_bool(true).as_float(), std::nullopt);
  EXPECT_EQ(gguf_u8(7).as_float(), 7.0);
  EXPECT_EQ(gguf_i64(-7).as_float(), -7.0);
  EXPECT_EQ(gguf_u64(~uint64_t{0}).as_int(), std::nullopt);
  EXPECT_EQ(gguf_str("5").as_int(), std::nullopt);
  EXPECT_EQ(gguf_f32(1.5f).as_int(), std::nullopt);
  EXPECT_EQ(gguf_u32(1).as_bool(), std::nullopt);
  EXPECT_EQ(gguf_u32(1).as_string(), std::nullopt);
  EXPECT_EQ(gguf_u32(1).as_array(), nullptr);
  EXPECT_EQ(gguf_str_array({"x"}).as_string(), std::nullopt);
}

TEST(gguf_value, DisplayStrings) {
  EXPECT_EQ(gguf_u32(42).to_display_string(), "42");
  EXPECT_EQ(gguf_i8(-3).to_display_string(), "-3");
  EXPECT_EQ(gguf_u64(~uint64_t{0}).to_display_string(), "18446744073709551615");
  EXPECT_EQ(gguf_f32(1e-6f).to_display_string(), "1e-06");
  EXPECT_EQ(gguf_f32(0.1f).to_display_string(), "0.1");
  EXPECT_EQ(gguf_f64(2.5).to_display_string(), "2.5");
  EXPECT_EQ(gguf_bool(false).to_display_string(), "false");
  EXPECT_EQ(gguf_str("deepseek2").to_display_string(), "\"deepseek2\"");
  EXPECT_EQ(gguf_str("a\"b\\\n\x01").to_display_string(), "\"a\\\"b\\\\\\n\\x01\"");
  EXPECT_EQ(gguf_array(GgufValueType::INT32, {gguf_i32(1), gguf_i32(2)}).to_display_string(), "int32[2] [1, 2]");
  EXPECT_EQ(gguf_array(GgufValueType::UINT8, {}).to_display_string(), "uint8[0] []");

  std::vector<std::string> tokens;
  for (int i = 0; i < 151936; ++i) tokens.push_back("t" + std::to_string(i));
  EXPECT_EQ(gguf_str_array(tokens).to_display_string(3), "string[151936] [\"t0\", \"t1\", \"t2\", ...]");
  EXPECT_EQ(gguf_str_array(tokens).to_display_string(0), "string[151936] [...]");
  EXPECT_EQ(gguf_array(GgufValueType::ARRAY, {gguf_array(GgufValueType::INT16, {gguf_i16(5)})}).to_display_string(),
            "array[1] [int16[1] [5]]");

  // Long strings are cut at a UTF-8 boundary, with an ellipsis and the full length.
  std::string long_text(95, 'x');
  long_text += "\xC3\xA9";  // 2-byte character straddling the 96-byte cut
  long_text += std::string(100, 'y');
  const std::string shown = gguf_str(long_text).to_display_string();
  EXPECT_EQ(shown, "\"" + std::string(95, 'x') + "\xE2\x80\xA6\" (197 bytes)");
  const std::string item = gguf_str_array({std::string(40, 'z')}).to_display_string();
  EXPECT_EQ(item, "string[1] [\"" + std::string(32, 'z') + "\xE2\x80\xA6\" (40 bytes)]");
}

TEST(gguf_writer, RejectsInvalidModels) {
  auto error_of = [](const GgufWriter& w) {
    auto r = w.to_bytes();
    return r.is_ok() ? std::string("ok") : r.status().message();
  };
  {
    GgufWriter w;
    w.add_tensor("x", GgmlType::F32, {2}, iota_bytes(4));
    EXPECT_NE(error_of(w).find("tensor 'x': has 4 bytes of data, expected 8"), std::string::npos) << error_of(w);
  }
  {
    GgufWriter w;
    w.add_tensor("x", GgmlType::Q4_0, {16}, {});
    EXPECT_NE(error_of(w).find("block size"), std::string::npos) << error_of(w);
  }
  {
    GgufWriter w;
    w.add_tensor("x", GgmlType::I8, {1}, {1});
    w.add_tensor("x", GgmlType::I8, {1}, {1});
    EXPECT_NE(error_of(w).find("duplicate tensor name"), std::string::npos) << error_of(w);
  }
  {
    GgufWriter w;
    w.set("k", gguf_array(GgufValueType::UINT32, {gguf_u32(1), gguf_i32(2)}));
    EXPECT_NE(error_of(w).find("metadata key 'k': array of uint32 holds a int32"), std::string::npos) << error_of(w);
  }
  {
    GgufWriter w;
    w.set("k", GgufValue{GgufValueType::UINT8, uint64_t{300}});
    EXPECT_NE(error_of(w).find("does not fit 8 bits"), std::string::npos) << error_of(w);
  }
  {
    GgufWriter w;
    w.set("general.alignment", gguf_u32(48));
    EXPECT_NE(error_of(w).find("'general.alignment': must be an integer power of two"), std::string::npos)
        << error_of(w);
    w.set("general.alignment", gguf_bool(true));
    EXPECT_NE(error_of(w).find("must be an integer power of two"), std::string::npos) << error_of(w);
  }
  {
    GgufWriter w;
    w.add_tensor("x", static_cast<GgmlType>(4), {1}, {1});
    EXPECT_NE(error_of(w).find("tensor 'x': unknown tensor type id 4"), std::string::npos) << error_of(w);
  }
  EXPECT_NE(error_of(GgufWriter(1)).find("version must be 2 or 3"), std::string::npos);
  TempDir dir;
  GgufWriter bad;
  bad.add_tensor("x", GgmlType::F32, {1}, {});
  EXPECT_FALSE(bad.write_file(dir.file("bad.gguf")).is_ok());
  EXPECT_FALSE(std::filesystem::exists(dir.file("bad.gguf")));  // nothing written for an invalid model
  // set() replaces an existing key in place.
  GgufWriter w;
  w.set("a", gguf_u8(1));
  w.set("b", gguf_u8(2));
  w.set("a", gguf_str("x"));
  auto m = parse(w.to_bytes().value());
  ASSERT_TRUE(m.is_ok());
  ASSERT_EQ((*m)->metadata().size(), 2u);
  EXPECT_EQ((*m)->metadata()[0].second.as_string(), "x");
}

TEST(gguf_file, OpensFileAndDirectory) {
  TempDir dir;
  ASSERT_TRUE(gguf_test::sample_writer().write_file(dir.file("model.gguf")).is_ok());
  std::ofstream(dir.file("notes.txt")) << "not a model";
  for (const std::string& path : {dir.file("model.gguf"), dir.path()}) {
    auto m = GgufModel::open(path);
    ASSERT_TRUE(m.is_ok()) << m.status().message();
    EXPECT_EQ((*m)->files(), std::vector<std::string>{dir.file("model.gguf")});
    expect_sample(**m);
  }
}

TEST(gguf_file, OpenReportsFileProblems) {
  TempDir dir;
  auto msg = [](const std::string& path) {
    auto m = GgufModel::open(path);
    return m.is_ok() ? std::string("ok") : m.status().message();
  };
  EXPECT_EQ(msg(dir.file("nope.gguf")), dir.file("nope.gguf") + ": no such file or directory");
  EXPECT_EQ(msg(dir.path()), dir.path() + ": directory holds no .gguf file");
  std::ofstream(dir.file("empty.gguf")).close();
  EXPECT_EQ(msg(dir.file("empty.gguf")), dir.file("empty.gguf") + ": empty file (0 bytes), not a GGUF file");
  std::ofstream(dir.file("text.gguf")) << "hello world, this is text";
  EXPECT_NE(msg(dir.file("text.gguf")).find("text.gguf: not a GGUF file: bad magic bytes 68 65 6c 6c"),
            std::string::npos)
      << msg(dir.file("text.gguf"));
  EXPECT_NE(msg(dir.path()).find("directory holds more than one model"), std::string::npos) << msg(dir.path());
}

// ---- Real fixtures (shared/fixtures/models/*/model.gguf next to the source tree) ----

std::string fixture(const std::string& name) {
  const char* src = std::getenv("TANDEM_SOURCE_DIR");
  if (src == nullptr) return "";
  return std::string(src) + "/../shared/fixtures/models/" + name + "/model.gguf";
}

#define OPEN_FIXTURE_OR_SKIP(var, name)                                                            \
  const std::string var##_path = fixture(name);                                                    \
  if (var##_path.empty()) GTEST_SKIP() << "TANDEM_SOURCE_DIR is not set (run through ctest)";      \
  if (!std::filesystem::exists(var##_path)) GTEST_SKIP() << "fixture not present: " << var##_path; \
  auto var##_result = GgufModel::open(var##_path);                                                 \
  ASSERT_TRUE(var##_result.is_ok()) << var##_result.status().message();                            \
  const GgufModel& var = **var##_result

TEST(gguf_fixtures, TinyDeepseekV3Bf16) {
  OPEN_FIXTURE_OR_SKIP(m, "tiny-dsv3-bf16");
  EXPECT_EQ(m.version(), 3u);
  EXPECT_EQ(m.get_string("general.architecture"), "deepseek2");
  EXPECT_EQ(m.tensors().size(), 55u);
  EXPECT_EQ(m.get_int("deepseek2.block_count"), 3);
  const GgufTensorInfo* t = m.find_tensor("blk.1.ffn_gate_exps.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dims, (std::vector<int64_t>{64, 32, 8}));
  EXPECT_EQ(t->type, GgmlType::BF16);
  EXPECT_EQ(t->n_bytes, 64u * 32 * 8 * 2);
  const GgufArray* tokens = m.find("tokenizer.ggml.tokens")->as_array();
  ASSERT_NE(tokens, nullptr);
  EXPECT_EQ(tokens->values.size(), 129280u);
}

TEST(gguf_fixtures, TinyQwen3MoeBf16) {
  OPEN_FIXTURE_OR_SKIP(m, "tiny-qwen3moe-bf16");
  EXPECT_EQ(m.tensors().size(), 27u);
  const GgufValue* tokens = m.find("tokenizer.ggml.tokens");
  ASSERT_NE(tokens, nullptr);
  ASSERT_NE(tokens->as_array(), nullptr);
  EXPECT_EQ(tokens->as_array()->element_type, GgufValueType::STRING);
  EXPECT_EQ(tokens->as_array()->values.size(), 151936u);
  EXPECT_EQ(tokens->to_display_string(2).rfind("string[151936] [", 0), 0u);
}

// Opens every fixture, checks each tensor lies inside its file, and prints the open time (for information only: a
// cold page cache on a slow disk makes it seconds, so it is no pass criterion; `tandem bench` reports load times).
TEST(gguf_fixtures, AllOpenWithTheirTensorsInside) {
  const std::string probe = fixture("x");
  if (probe.empty()) GTEST_SKIP() << "TANDEM_SOURCE_DIR is not set (run through ctest)";
  const auto root = std::filesystem::path(probe).parent_path().parent_path();
  if (!std::filesystem::is_directory(root)) GTEST_SKIP() << "no fixtures directory at " << root;
  int opened = 0;
  for (const auto& entry : std::filesystem::directory_iterator(root)) {
    const auto path = entry.path() / "model.gguf";
    if (!std::filesystem::exists(path)) continue;
    const auto start = std::chrono::steady_clock::now();
    auto m = GgufModel::open(path.string());
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    ASSERT_TRUE(m.is_ok()) << m.status().message();
    const auto size = std::filesystem::file_size(path);
    for (const GgufTensorInfo& t : (*m)->tensors()) EXPECT_LE(t.file_offset + t.n_bytes, size) << t.name;
    std::cout << "[ gguf     ] " << path.string() << ": " << (*m)->tensors().size() << " tensors, "
              << (*m)->metadata().size() << " keys, opened in " << ms << " ms\n";
    ++opened;
  }
  if (opened == 0) GTEST_SKIP() << "no fixture model.gguf under " << root;
}

}  // namespace
}  // namespace tandem
