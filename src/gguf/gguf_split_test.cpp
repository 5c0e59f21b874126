// Split GGUF models (`NAME-0000i-of-0000N.gguf`, as llama-gguf-split writes them) opened as one model.
#include <gtest/gtest.h>

#include <filesystem>

#include "gguf/gguf_file.h"
#include "gguf/gguf_test_util.h"
#include "gguf/gguf_writer.h"

namespace tandem {
namespace {

using gguf_test::iota_bytes;
using gguf_test::TempDir;

std::string part_name(int i, int n = 3) {
  return "model-0000" + std::to_string(i) + "-of-0000" + std::to_string(n) + ".gguf";
}

// Part i (1-based) of a 3-part model with two tensors per part: "t{2i-2}", "t{2i-1}".
GgufWriter part_writer(int i, int tensors_total = 6) {
  GgufWriter w;
  if (i == 1) {
    w.set("general.architecture", gguf_str("test"));
    w.set("test.block_count", gguf_u32(3));
  }
  w.set("split.no", gguf_u16(static_cast<uint16_t>(i - 1)));
  w.set("split.count", gguf_u16(3));
  w.set("split.tensors.count", gguf_i32(tensors_total));
  for (int k = 2 * i - 2; k < 2 * i; ++k) {
    w.add_tensor("t" + std::to_string(k), GgmlType::F32, {2, 2}, iota_bytes(16, static_cast<uint8_t>(k * 16)));
  }
  return w;
}

void write_parts(const TempDir& dir) {
  for (int i = 1; i <= 3; ++i) ASSERT_TRUE(part_writer(i).write_file(dir.file(part_name(i))).is_ok());
}

std::string open_error(const std::string& path) {
  auto m = GgufModel::open(path);
  return m.is_ok() ? std::string("ok") : m.status().message();
}

TEST(gguf_split, OpensThreePartsViaAnyPartOrDirectory) {
  TempDir dir;
  write_parts(dir);
  const std::vector<std::string> expected_files = {dir.file(part_name(1)), dir.file(part_name(2)),
                                                   dir.file(part_name(3))};
  for (const std::string& path : {dir.file(part_name(1)), dir.file(part_name(2)), dir.path()}) {
    auto r = GgufModel::open(path);
    ASSERT_TRUE(r.is_ok()) << path << ": " << r.status().message();
    const GgufModel& m = **r;
    EXPECT_EQ(m.files(), expected_files);
    EXPECT_EQ(m.get_string("general.architecture"), "test");  // metadata of the first part
    EXPECT_EQ(m.get_int("split.no"), 0);
    ASSERT_EQ(m.tensors().size(), 6u);
    for (int k = 0; k < 6; ++k) {
      const GgufTensorInfo* t = m.find_tensor("t" + std::to_string(k));
      ASSERT_NE(t, nullptr);
      EXPECT_EQ(t->file_index, k / 2);
      EXPECT_EQ(std::vector<uint8_t>(t->data, t->data + 16), iota_bytes(16, static_cast<uint8_t>(k * 16)));
    }
    EXPECT_EQ(m.total_tensor_bytes(), 6u * 16);
  }
}

TEST(gguf_split, MissingPartIsNamed) {
  TempDir dir;
  write_parts(dir);
  std::filesystem::remove(dir.file(part_name(2)));
  const std::string want = dir.file(part_name(2)) + ": missing part 2 of 3 of split model";
  EXPECT_EQ(open_error(dir.file(part_name(1))).rfind(want, 0), 0u) << open_error(dir.file(part_name(1)));
  EXPECT_EQ(open_error(dir.file(part_name(3))).rfind(want, 0), 0u);
  EXPECT_EQ(open_error(dir.path()).rfind(want, 0), 0u) << open_error(dir.path());
}

TEST(gguf_split, DuplicateTensorAcrossParts) {
  TempDir dir;
  write_parts(dir);
  GgufWriter w = part_writer(3);
  w.add_tensor("t1", GgmlType::F32, {1}, iota_bytes(4));
  ASSERT_TRUE(w.write_file(dir.file(part_name(3))).is_ok());
  EXPECT_EQ(open_error(dir.path()), dir.file(part_name(3)) + ": tensor 't1' also appears in " + dir.file(part_name(1)));
}

TEST(gguf_split, TensorCountMismatch) {
  TempDir dir;
  write_parts(dir);
  ASSERT_TRUE(part_writer(1, 7).write_file(dir.file(part_name(1))).is_ok());
  EXPECT_EQ(open_error(dir.file(part_name(2))),
            dir.file(part_name(1)) + ": metadata says split.tensors.count = 7 but the 3 part(s) hold 6 tensors");
}

TEST(gguf_split, PartMetadataMustMatchItsName) {
  TempDir dir;
  write_parts(dir);
  GgufWriter w = part_writer(2);
  w.set("split.no", gguf_u16(5));
  ASSERT_TRUE(w.write_file(dir.file(part_name(2))).is_ok());
  EXPECT_EQ(open_error(dir.path()), dir.file(part_name(2)) + ": metadata key 'split.no' is 5, expected 1");
}

TEST(gguf_split, CorruptPartIsNamed) {
  TempDir dir;
  write_parts(dir);
  std::filesystem::resize_file(dir.file(part_name(3)), 100);
  EXPECT_EQ(open_error(dir.path()).rfind(dir.file(part_name(3)) + ": ", 0), 0u) << open_error(dir.path());
}

TEST(gguf_split, SplitNamesAndDirectories) {
  TempDir dir;
  // A lone file that says it is part of a set but is not named like one.
  ASSERT_TRUE(part_writer(1).write_file(dir.file("model.gguf")).is_ok());
  EXPECT_NE(open_error(dir.file("model.gguf")).find("split.count = 3 but the name does not follow"), std::string::npos)
      << open_error(dir.file("model.gguf"));
  // Part number beyond the count.
  ASSERT_TRUE(part_writer(1).write_file(dir.file("x-00004-of-00003.gguf")).is_ok());
  EXPECT_EQ(open_error(dir.file("x-00004-of-00003.gguf")),
            dir.file("x-00004-of-00003.gguf") + ": split file name says part 4 of 3");
  // A directory holding two models.
  EXPECT_NE(open_error(dir.path()).find("directory holds more than one model"), std::string::npos);
  // A one-part "split" is a plain model.
  TempDir one;
  GgufWriter w;
  w.set("split.count", gguf_u16(1));
  w.add_tensor("t", GgmlType::F32, {1}, iota_bytes(4));
  ASSERT_TRUE(w.write_file(one.file("m-00001-of-00001.gguf")).is_ok());
  auto m = GgufModel::open(one.path());
  ASSERT_TRUE(m.is_ok()) << m.status().message();
  EXPECT_EQ((*m)->tensors().size(), 1u);
}

}  // namespace
}  // namespace tandem
