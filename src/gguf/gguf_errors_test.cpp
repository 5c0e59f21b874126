// GGUF reader error paths: every kind of malformed image gives a Status naming the file and the problem.
// Also a truncation sweep and random corruptions of a valid image (never a crash or out-of-bounds read).
#include <gtest/gtest.h>

#include <limits>
#include <random>

#include "gguf/gguf_file.h"
#include "gguf/gguf_test_util.h"

namespace tandem {
namespace {

using gguf_test::expect_error;
using gguf_test::parse;
using gguf_test::Raw;

constexpr uint32_t kF32 = 0;
constexpr uint32_t kQ4_0 = 2;

// One tensor "t" of `type` with `dims` at data offset `offset`, followed by `data_bytes` of data.
std::vector<uint8_t> one_tensor(const std::vector<int64_t>& dims, uint32_t type, uint64_t offset, size_t data_bytes) {
  return Raw().header(1, 0).tensor_info("t", dims, type, offset).pad_to(32).zeros(data_bytes).bytes;
}

TEST(gguf_errors, BadMagicAndVersion) {
  expect_error({}, {"truncated: 0 bytes is too short"});
  expect_error({'G', 'G'}, {"truncated: 2 bytes is too short"});
  auto bytes = Raw().header(0, 0).bytes;
  bytes[0] = 'X';
  expect_error(bytes, {"not a GGUF file: bad magic bytes 58 47 55 46"});
  expect_error(Raw().header(0, 0, 1).bytes, {"GGUF version 1 is not supported", "at offset 4"});
  expect_error(Raw().header(0, 0, 4).bytes, {"unsupported GGUF version 4"});
  expect_error(Raw().header(0, 0, 0x03000000).bytes, {"big-endian GGUF files are not supported"});
}

TEST(gguf_errors, TruncatedHeader) {
  auto bytes = Raw().header(0, 0).bytes;
  bytes.resize(6);
  expect_error(bytes, {"truncated: version needs 4 bytes, only 2 left"});
  bytes = Raw().header(0, 0).bytes;
  bytes.resize(12);
  expect_error(bytes, {"truncated: tensor count needs 8 bytes, only 4 left"});
  bytes = Raw().header(0, 0).bytes;
  bytes.resize(20);
  expect_error(bytes, {"truncated: metadata count needs 8 bytes"});
}

TEST(gguf_errors, AbsurdCounts) {
  expect_error(Raw().header(0, 1000).bytes, {"1000 metadata entries cannot fit in the 0 bytes left"});
  expect_error(Raw().header(~uint64_t{0}, 0).bytes, {"18446744073709551615 tensor infos cannot fit"});
  // Tensor count checked again once the metadata is read.
  expect_error(Raw().header(1, 1).kv_u32("k", 1).zeros(20).bytes, {"1 tensor infos cannot fit in the 20 bytes left"});
}

TEST(gguf_errors, TruncatedOrAbsurdStrings) {
  expect_error(Raw().header(0, 2).kv_u32("kkkkkkkkkkkk", 1).zeros(5).bytes,
               {"metadata entry #1: truncated: key needs 8 bytes, only 5 left"});
  expect_error(
      Raw().header(0, 1).u64(1000000).zeros(16).bytes,
      {"metadata entry #0: truncated or corrupt: key length 1000000 exceeds the 16 bytes left", "at offset 24"});
  expect_error(Raw().header(0, 1).str("k").u32(8).u64(~uint64_t{0}).bytes,
               {"metadata key 'k'", "string value length 18446744073709551615 exceeds the 0 bytes left"});
  auto cut = Raw().header(0, 1).str("name").u32(8).str("hello").bytes;
  cut.resize(cut.size() - 2);
  expect_error(cut, {"metadata key 'name': truncated or corrupt: string value length 5 exceeds the 3 bytes left"});
}

TEST(gguf_errors, BadMetadataValues) {
  expect_error(Raw().header(0, 1).str("k").u32(13).zeros(8).bytes,
               {"metadata key 'k': unknown metadata value type 13", "at offset 33"});
  expect_error(Raw().header(0, 1).str("").u32(4).u32(0).bytes, {"empty metadata key"});
  expect_error(Raw().header(0, 2).kv_u32("dup", 1).kv_u32("dup", 2).bytes,
               {"metadata key 'dup': duplicate metadata key"});
  expect_error(Raw().header(0, 1).str("b").u32(7).u8(2).bytes, {"metadata key 'b': bool value 2 is neither 0 nor 1"});
  expect_error(Raw().header(0, 1).str("k").u32(4).u8(1).bytes,
               {"metadata key 'k': truncated: uint32 value needs 4 bytes, only 1 left"});
}

TEST(gguf_errors, BadArrays) {
  expect_error(Raw().header(0, 1).str("a").u32(9).u32(99).u64(0).bytes,
               {"metadata key 'a': unknown array element type 99"});
  expect_error(Raw().header(0, 1).str("a").u32(9).u32(4).u64(1000000000).zeros(64).bytes,
               {"array of 1000000000 uint32 values cannot fit in the 64 bytes left"});
  expect_error(Raw().header(0, 1).str("a").u32(9).u32(8).u64(3).str("x").str("y").zeros(4).bytes,
               {"array of 3 string values cannot fit in the 22 bytes left"});
  expect_error(Raw().header(0, 1).str("a").u32(9).u32(8).u64(2).str("x").u64(50).zeros(8).bytes,
               {"metadata key 'a'", "string value length 50 exceeds the 8 bytes left"});
  expect_error(Raw().header(0, 1).str("a").u32(9).u32(5).u64(2).u32(1).u8(0).bytes,
               {"array of 2 int32 values cannot fit in the 5 bytes left"});
  // Nesting: 8 levels are fine, 9 are not.
  for (int depth : {8, 9}) {
    Raw r;
    r.header(0, 1).str("deep").u32(9);
    for (int i = 1; i < depth; ++i) r.u32(9).u64(1);
    r.u32(0).u64(0);
    if (depth == 8) {
      EXPECT_TRUE(parse(r.bytes).is_ok()) << parse(r.bytes).status().message();
    } else {
      expect_error(r.bytes, {"metadata key 'deep': arrays nested more than 8 levels deep"});
    }
  }
}

TEST(gguf_errors, BadAlignment) {
  auto with_alignment = [](uint32_t type, uint64_t value) {
    Raw r;
    r.header(0, 1).str("general.alignment").u32(type);
    if (type == 8) {
      r.str("x");
    } else if (type == 10) {
      r.u64(value);
    } else {
      r.u32(static_cast<uint32_t>(value));
    }
    return r.bytes;
  };
  const std::string_view must = "metadata key 'general.alignment': must be an integer power of two in 1..2^30, not ";
  expect_error(with_alignment(4, 0), {must, "not uint32 0"});
  expect_error(with_alignment(4, 48), {must, "not uint32 48"});
  expect_error(with_alignment(10, uint64_t{1} << 40), {must, "not uint64 1099511627776"});
  expect_error(with_alignment(10, ~uint64_t{0}), {must, "not uint64 18446744073709551615"});
  expect_error(with_alignment(8, 0), {must, "not string \"x\""});
  EXPECT_TRUE(parse(with_alignment(4, 64)).is_ok());
  EXPECT_TRUE(parse(with_alignment(10, 1)).is_ok());
}

TEST(gguf_errors, BadTensorInfos) {
  expect_error(one_tensor({1, 1, 1, 1, 1}, kF32, 0, 4), {"tensor 't': n_dims 5 is out of range (GGUF allows 1..4)"});
  expect_error(one_tensor({}, kF32, 0, 4), {"tensor 't': n_dims 0 is out of range"});
  expect_error(one_tensor({4, 0}, kF32, 0, 16), {"tensor 't': dimension 1 is 0 (must be positive)"});
  expect_error(one_tensor({4, -3}, kF32, 0, 16), {"dimension 1 is -3 (must be positive)"});
  expect_error(one_tensor({int64_t{1} << 62, 4}, kF32, 0, 0), {"tensor 't': element count overflows int64"});
  expect_error(one_tensor({int64_t{1} << 61, 2}, kF32, 0, 0), {"tensor 't': byte size overflows size_t"});
  expect_error(one_tensor({4}, 4, 0, 16), {"tensor 't': unknown tensor type id 4"});
  expect_error(one_tensor({4}, 1000, 0, 16), {"unknown tensor type id 1000"});
  expect_error(one_tensor({16}, kQ4_0, 0, 64), {"row length dims[0] = 16 is not a multiple of the Q4_0 block size 32"});
  expect_error(Raw().header(1, 0).tensor_info("", {1}, kF32, 0).pad_to(32).zeros(4).bytes,
               {"tensor info #0: empty tensor name"});
  expect_error(
      Raw().header(2, 0).tensor_info("t", {1}, kF32, 0).tensor_info("t", {1}, kF32, 32).pad_to(32).zeros(64).bytes,
      {"tensor 't': duplicate tensor name"});
  // Second tensor info cut inside its first dimension.
  auto cut = Raw().header(2, 0).tensor_info(std::string(40, 'a'), {4}, kF32, 0).str("t").u32(2).zeros(3).bytes;
  expect_error(cut, {"tensor 't': truncated: dimension needs 8 bytes, only 3 left"});
}

TEST(gguf_errors, BadTensorOffsets) {
  ASSERT_TRUE(parse(one_tensor({4}, kF32, 0, 16)).is_ok());
  expect_error(one_tensor({4}, kF32, 16, 48), {"tensor 't': data offset 16 is not a multiple of the alignment 32"});
  expect_error(one_tensor({4}, kF32, 0, 15),
               {"tensor 't': data (16 bytes at data offset 0) extends past the end of the file (79 bytes)"});
  expect_error(one_tensor({4}, kF32, 64, 16), {"data (16 bytes at data offset 64) extends past the end"});
  expect_error(one_tensor({4}, kF32, ~uint64_t{31}, 16), {"extends past the end"});  // offset + start overflows
  expect_error(one_tensor({int64_t{1} << 60}, kF32, 0, 16), {"data (4611686018427387904 bytes"});
}

// Cuts a valid image at every length: each prefix must give an error or (past the last data byte) a model.
TEST(gguf_errors, TruncationSweep) {
  const auto image = gguf_test::sample_bytes();
  ASSERT_GT(image.size(), 200u);
  size_t errors = 0;
  for (size_t len = 0; len < image.size(); ++len) {
    std::vector<uint8_t> cut(image.begin(), image.begin() + static_cast<std::ptrdiff_t>(len));
    auto m = parse(cut, "cut.gguf");
    if (!m.is_ok()) {
      ++errors;
      EXPECT_EQ(m.status().message().rfind("cut.gguf: ", 0), 0u) << m.status().message();
      continue;
    }
    for (const GgufTensorInfo& t : (*m)->tensors()) EXPECT_LE(t.file_offset + t.n_bytes, len);
  }
  EXPECT_GT(errors, image.size() - 32);  // only cuts in the last tensor's padding can succeed
}

// Random single-byte (and a few multi-byte) corruptions: error or a model whose tensors lie in the buffer.
TEST(gguf_errors, RandomCorruptions) {
  const auto image = gguf_test::sample_bytes();
  std::mt19937_64 rng(12345);
  size_t ok = 0;
  const size_t iterations = 20000;
  for (size_t i = 0; i < iterations; ++i) {
    std::vector<uint8_t> bytes = image;
    const int n_changes = i % 10 == 0 ? 1 + static_cast<int>(rng() % 8) : 1;
    for (int c = 0; c < n_changes; ++c) {
      const size_t pos = rng() % bytes.size();
      static constexpr uint8_t kInteresting[] = {0x00, 0x01, 0x7F, 0x80, 0xFF, 0x08, 0x09, 0x20};
      bytes[pos] = rng() % 2 ? static_cast<uint8_t>(rng()) : kInteresting[rng() % sizeof kInteresting];
    }
    auto m = parse(bytes, "corrupt.gguf");
    if (!m.is_ok()) {
      EXPECT_EQ(m.status().message().rfind("corrupt.gguf: ", 0), 0u) << m.status().message();
      continue;
    }
    ++ok;
    for (const auto& kv : (*m)->metadata()) EXPECT_FALSE(kv.second.to_display_string().empty());
    for (const GgufTensorInfo& t : (*m)->tensors()) {
      ASSERT_GE(t.data, bytes.data());
      ASSERT_LE(t.file_offset + t.n_bytes, bytes.size());
      EXPECT_EQ(t.data, bytes.data() + t.file_offset);
    }
  }
  EXPECT_GT(ok, 0u);  // corruptions of values and tensor data still parse
  EXPECT_LT(ok, iterations);
}

}  // namespace
}  // namespace tandem
