// Block layouts of the GGUF quantized types, byte for byte as ggml writes them (ggml-common.h), shared by
// the scalar and SIMD kernels and by tests that build blocks by hand. Internal to src/kernels/cpu.
//
// Notation: a block holds a run of consecutive values of a row; `e` is a value's index inside its block.
// Scales stored as uint16_t are IEEE half floats (fp16_to_fp32). All multi-byte fields are little endian.
//
// Helpers here are `static inline` on purpose: the header is included by translation units compiled for
// different ISAs, and internal linkage keeps the linker from picking an AVX2-compiled copy for scalar code.
#pragma once

#include <cstdint>
#include <cstring>

namespace tandem::cpu {

inline constexpr int kQK = 32;     // values per block of the legacy types (Q4_0 .. Q8_0)
inline constexpr int kQK_K = 256;  // values per super-block of the k-quants (Q2_K .. Q6_K)

// Q8_0: x[e] = d * qs[e].
struct BlockQ8_0 {
  uint16_t d;
  int8_t qs[32];
};

// Q4_0: byte qs[j] holds value j (low nibble) and value j + 16 (high nibble); x = d * (q - 8).
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[16];
};

// Q4_1: nibbles as Q4_0; x = d * q + m.
struct BlockQ4_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qs[16];
};

// Q5_0: nibbles as Q4_0 give the low 4 bits; bit e of the little-endian uint32 qh is bit 4 of value e;
// x = d * (q - 16).
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[16];
};

// Q5_1: bits as Q5_0; x = d * q + m.
struct BlockQ5_1 {
  uint16_t d;
  uint16_t m;
  uint8_t qh[4];
  uint8_t qs[16];
};

// Q2_K: 16 sub-blocks of 16 values. scales[s] = scale (low nibble) | min (high nibble) of sub-block s = e / 16.
// Value e = 128 * h + 32 * k + l (h < 2, k < 4, l < 32) is bits 2k..2k+1 of qs[32 * h + l];
// x = d * scale * q - dmin * min.
struct BlockQ2_K {
  uint8_t scales[16];
  uint8_t qs[64];
  uint16_t d;
  uint16_t dmin;
};

// Q3_K: 16 sub-blocks of 16 values with 6-bit scales stored as scale + 32 (unpack_q3_k_scales).
// Value e = 128 * h + 32 * k + l: low 2 bits are bits 2k..2k+1 of qs[32 * h + l], the high bit is bit
// 4h + k of hmask[l]; q = low + 4 * high - 4 in [-4, 3]; x = d * scale * q.
struct BlockQ3_K {
  uint8_t hmask[32];
  uint8_t qs[64];
  uint8_t scales[12];
  uint16_t d;
};

// Q4_K: 8 sub-blocks of 32 values with 6-bit (scale, min) pairs (unpack_k4_scales).
// Value e = 64 * j + l (l < 32) is the low nibble of qs[32 * j + l], value 64 * j + 32 + l its high nibble;
// x = d * scale * q - dmin * min.
struct BlockQ4_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qs[128];
};

// Q5_K: as Q4_K, plus bit 4 of value e = 32 * s + l (sub-block s, l < 32) in bit s of qh[l].
struct BlockQ5_K {
  uint16_t d;
  uint16_t dmin;
  uint8_t scales[12];
  uint8_t qh[32];
  uint8_t qs[128];
};

// Q6_K: 16 sub-blocks of 16 values with int8 scales; q in [-32, 31]; x = d * scales[e / 16] * q.
// Value e = 128 * h + 32 * k + l (l < 32): low 4 bits from ql[64 * h + 32 * (k & 1) + l] (low nibble for
// k < 2, high nibble for k >= 2), high 2 bits are bits 2k..2k+1 of qh[32 * h + l]; q = bits - 32.
struct BlockQ6_K {
  uint8_t ql[128];
  uint8_t qh[64];
  int8_t scales[16];
  uint16_t d;
};

static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ2_K) == 84);
static_assert(sizeof(BlockQ3_K) == 110);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);

// Q4_K / Q5_K: the 12 scale bytes hold 8 (scale, min) pairs of 6 bits. Pairs 0..3 sit in the low 6 bits of
// bytes 0..3 (scale) and 4..7 (min); pairs 4..7 keep their low 4 bits in the nibbles of bytes 8..11
// (scale low, min high) and their top 2 bits in the top 2 bits of bytes 0..3 (scale) and 4..7 (min).
__attribute__((always_inline)) static inline void unpack_k4_scales(const uint8_t* s, uint8_t scale[8], uint8_t min[8]) {
  uint32_t w[3];
  std::memcpy(w, s, sizeof w);
  const uint32_t words[4] = {w[0] & 0x3F3F3F3Fu, (w[2] & 0x0F0F0F0Fu) | ((w[0] >> 2) & 0x30303030u), w[1] & 0x3F3F3F3Fu,
                             ((w[2] >> 4) & 0x0F0F0F0Fu) | ((w[1] >> 2) & 0x30303030u)};
  std::memcpy(scale, words, 8);
  std::memcpy(min, words + 2, 8);
}

static inline void pack_k4_scales(const uint8_t scale[8], const uint8_t min[8], uint8_t* s) {
  for (int j = 0; j < 4; ++j) {
    s[j] = static_cast<uint8_t>((scale[j] & 63) | ((scale[j + 4] >> 4) << 6));
    s[j + 4] = static_cast<uint8_t>((min[j] & 63) | ((min[j + 4] >> 4) << 6));
    s[j + 8] = static_cast<uint8_t>((scale[j + 4] & 0x0F) | ((min[j + 4] & 0x0F) << 4));
  }
}

// Q3_K: the 12 scale bytes hold 16 values u = scale + 32 of 6 bits. The low 4 bits of u_s are the low
// nibble of byte s (s < 8) or the high nibble of byte s - 8; its top 2 bits are bits 2*(s/4)..+1 of
// byte 8 + s % 4.
__attribute__((always_inline)) static inline void unpack_q3_k_scales(const uint8_t* s, int8_t scale[16]) {
  uint32_t w[3];
  std::memcpy(w, s, sizeof w);
  const uint32_t t = w[2];
  const uint32_t words[4] = {
      (w[0] & 0x0F0F0F0Fu) | ((t << 4) & 0x30303030u), (w[1] & 0x0F0F0F0Fu) | ((t << 2) & 0x30303030u),
      ((w[0] >> 4) & 0x0F0F0F0Fu) | (t & 0x30303030u), ((w[1] >> 4) & 0x0F0F0F0Fu) | ((t >> 2) & 0x30303030u)};
  uint8_t u[16];
  std::memcpy(u, words, sizeof u);
  for (int j = 0; j < 16; ++j) scale[j] = static_cast<int8_t>(u[j] - 32);
}

static inline void pack_q3_k_scales(const int8_t scale[16], uint8_t* s) {
  std::memset(s, 0, 12);
  for (int j = 0; j < 16; ++j) {
    const int u = scale[j] + 32;
    s[j % 8] = static_cast<uint8_t>(s[j % 8] | ((u & 0x0F) << (j < 8 ? 0 : 4)));
    s[8 + j % 4] = static_cast<uint8_t>(s[8 + j % 4] | ((u >> 4) << (2 * (j / 4))));
  }
}

// Q5_0 / Q5_1 high bits as one little-endian word.
static inline uint32_t load_u32_le(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace tandem::cpu
