// Fully connected kernels for aarch64 NEON. Weights stay 2 bits per weight in memory: batch-1 FC
// reads every weight once per row and is bound by weight traffic, so no int8 or float copy of the
// weights exists. Layouts are those of the x86 kernels (docs/kernel_layout.md of issue 9) where
// they fit NEON:
//   exact:          nibble planes (PackNibblePlanes, 2 bits per weight, as fast mode): per group
//                   of 4 taps a 16-float table of the sums of x over every subset, looked up
//                   for 4 outputs at once with `tbl` (vqtbl4q_u8 on the 64-byte table, byte
//                   indices 4·m + 0..3 built from each output's nibble m by another `tbl`).
//   fast, NEON:     nibble planes (PackNibblePlanes): per group of 4 taps two 16-byte tables of
//                   the subset sums of the low and high nibbles of u = q + 128 (the TL1 idea:
//                   vqtbl1q_u8 looks up 4 taps for 16 outputs at once); u8 sums widened to u16
//                   every 16 taps (L + 16·H with vmlal_u8), to int32 every 256 taps;
//                   Σ_P q = Σ_P u − 128·|P|.
//   fast, dotprod:  bit-sliced planes (PackBitSlicedPlanes below): vtstq_u8 turns 16 weight
//                   bits into 0/−1 bytes and SDOT multiplies them with 16 int8 activations
//                   (fully_connected_neon_dotprod.cc).
// Activations are quantized once per row with the reference's rule (QuantizeSymmetricInt8
// itself); the integer sums are exact and the final float expression is the reference's.
#include <arm_neon.h>

#include <cstring>

#include "core/optimized/internal.h"
#include "core/optimized/neon_dotprod.h"
#include "core/optimized/neon_internal.h"
#include "core/reference_kernels.h"
#include "core/thread_pool.h"

namespace ttq {
namespace core {
namespace optimized {
namespace {

// See neon_dotprod.h: [quad][block][output 0..3][P 16 B][N 16 B], bit i of byte j = tap
// 128·block + 16·i + j. Output channels padded to a multiple of 4 with zero rows.
void PackBitSlicedPlanes(const int8_t* trits, int out_channels, int k, AlignedBuffer* out) {
  const int quads = (out_channels + 3) / 4;
  const int blocks = (k + 127) / 128;
  const size_t bytes = static_cast<size_t>(quads) * blocks * 128;
  out->Reserve(bytes);
  uint8_t* base = out->as<uint8_t>();
  std::memset(base, 0, bytes);
  for (int c = 0; c < out_channels; ++c) {
    const int8_t* row = trits + static_cast<int64_t>(c) * k;
    uint8_t* quad = base + static_cast<size_t>(c / 4) * blocks * 128;
    for (int t = 0; t < k; ++t) {
      if (row[t] == 0) continue;
      const int block = t / 128, within = t % 128;
      uint8_t* plane =
          quad + static_cast<size_t>(block) * 128 + (c % 4) * 32 + (row[t] > 0 ? 0 : 16);
      plane[within % 16] |= static_cast<uint8_t>(1u << (within / 16));
    }
  }
}

inline float32x4_t Activate(Activation a, float32x4_t v) {
  if (a == Activation::kNone) return v;
  v = vmaxq_f32(v, vdupq_n_f32(0.0f));
  if (a == Activation::kRelu6) v = vminq_f32(v, vdupq_n_f32(6.0f));
  return v;
}

class FullyConnectedNeon final : public TernaryKernel {
 public:
  enum class Path { kExactNibble, kFastNibble, kFastBitSlicedDotprod };

  FullyConnectedNeon(const OpParams& p, const TernaryWeights& w, Path path)
      : in_(p.in_channels), out_(p.out_channels), act_(p.activation), path_(path) {
    switch (path) {
      case Path::kExactNibble:
      case Path::kFastNibble:
        PackNibblePlanes(w.trits, out_, in_, &planes_, &counts_);
        break;
      case Path::kFastBitSlicedDotprod:
        PackBitSlicedPlanes(w.trits, out_, in_, &planes_);
        break;
    }
    PackChannelVector(w.pos_scales, out_, 32, &pos_);
    PackChannelVector(w.neg_scales, out_, 32, &neg_);
    PackChannelVector(w.bias, out_, 32, &bias_);
  }

  void RunConv(const ConvShape&, const float*, float*, ThreadPool*) override {}

  void RunFullyConnected(int rows, const float* input, float* output, ThreadPool* pool) override {
    for (int r = 0; r < rows; ++r) {
      const float* x = input + static_cast<int64_t>(r) * in_;
      float* y = output + static_cast<int64_t>(r) * out_;
      switch (path_) {
        case Path::kExactNibble:
          RowExact(x, y, pool);
          break;
        case Path::kFastNibble:
          RowFastNibble(x, y, pool);
          break;
        case Path::kFastBitSlicedDotprod:
          RowFastBitSliced(x, y, pool);
          break;
      }
    }
  }

  const char* Name() const override {
    switch (path_) {
      case Path::kExactNibble:
        return "neon_fc_nibble_lut_f32";
      case Path::kFastNibble:
        return "neon_fc_nibble_lut_int8";
      case Path::kFastBitSlicedDotprod:
        return "neon_dotprod_fc_bitsliced_sdot_int8";
    }
    return "?";
  }

 private:
  // ---- exact: nibble planes + 16-float subset tables ----------------------------------------
  // tables[16·g + m] = Σ x[4g + i] over the bits i of m (x zero beyond in_), 64 bytes per group
  // of 4 taps; pair p of the nibble planes uses groups 2p (low nibbles) and 2p + 1 (high).
  void RowExact(const float* x, float* y, ThreadPool* pool) {
    const int kp16 = RoundUp(in_, 16);
    const int groups = kp16 / 4;
    scratch_.Reserve(sizeof(float) * static_cast<size_t>(groups) * 16);
    float* tables = scratch_.as<float>();
    for (int g = 0; g < groups; ++g) {
      float v[4];
      for (int i = 0; i < 4; ++i) v[i] = 4 * g + i < in_ ? x[4 * g + i] : 0.0f;
      float* t = tables + 16 * g;
      t[0] = 0.0f;
      for (int m = 1; m < 16; ++m) {
        const int top = 31 - __builtin_clz(static_cast<unsigned>(m));
        t[m] = t[m ^ (1 << top)] + v[top];
      }
    }
    const int tiles = (out_ + 31) / 32;
    ParallelFor(pool, 2 * tiles, [&](int begin, int end) {
      for (int h = begin; h < end; ++h) ExactHalfTile(tables, kp16 / 8, h / 2, h % 2, y);
    });
  }

  // Outputs tile·32 + 16·half + 0..15: per pair of 8 taps and plane, each output's nibble m
  // becomes 4·m in a byte (for all 16 outputs at once), a `tbl` spreads the bytes of outputs
  // 4j..4j+3 over 4 bytes each, adding 0, 1, 2, 3 gives the byte indices of float m in the
  // 64-byte table, and vqtbl4q_u8 looks it up: 4 taps × 4 outputs per lookup.
  void ExactHalfTile(const float* tables, int pairs, int tile, int half, float* y) const {
    const uint8_t* w = planes_.as<uint8_t>() + static_cast<size_t>(tile) * pairs * 64 + 16 * half;
    const uint8_t* tb = reinterpret_cast<const uint8_t*>(tables);
    const uint8x16_t times4_mask = vdupq_n_u8(0x3c);
    const uint8x16_t byte_of_float = vreinterpretq_u8_u32(vdupq_n_u32(0x03020100u));
    uint8x16_t spread[4];  // spread[j] byte 4i + b = byte 4j + i
    for (int j = 0; j < 4; ++j) {
      alignas(16) uint8_t pattern[16];
      for (int i = 0; i < 16; ++i) pattern[i] = static_cast<uint8_t>(4 * j + i / 4);
      spread[j] = vld1q_u8(pattern);
    }
    float32x4_t acc[2][4];
    for (auto& plane : acc) {
      for (auto& a : plane) a = vdupq_n_f32(0.0f);
    }
    for (int pair = 0; pair < pairs; ++pair) {
      const uint8x16x4_t t_lo = vld1q_u8_x4(tb + static_cast<size_t>(2 * pair) * 64);
      const uint8x16x4_t t_hi = vld1q_u8_x4(tb + static_cast<size_t>(2 * pair + 1) * 64);
#pragma GCC unroll 2
      for (int pl = 0; pl < 2; ++pl) {
        const uint8x16_t bytes = vld1q_u8(w + static_cast<size_t>(pair) * 64 + 32 * pl);
        const uint8x16_t lo4 = vandq_u8(vshlq_n_u8(bytes, 2), times4_mask);  // 4·(low nibble)
        const uint8x16_t hi4 = vandq_u8(vshrq_n_u8(bytes, 2), times4_mask);  // 4·(high nibble)
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {
          const uint8x16_t lo = vaddq_u8(vqtbl1q_u8(lo4, spread[j]), byte_of_float);
          const uint8x16_t hi = vaddq_u8(vqtbl1q_u8(hi4, spread[j]), byte_of_float);
          acc[pl][j] = vaddq_f32(acc[pl][j], vreinterpretq_f32_u8(vqtbl4q_u8(t_lo, lo)));
          acc[pl][j] = vaddq_f32(acc[pl][j], vreinterpretq_f32_u8(vqtbl4q_u8(t_hi, hi)));
        }
      }
    }
    const int c = tile * 32 + 16 * half;
    if (c >= out_) return;
    const float* sp = pos_.as<float>() + c;
    const float* sn = neg_.as<float>() + c;
    const float* b = bias_.as<float>() + c;
    alignas(16) float tmp[16];
    for (int j = 0; j < 4; ++j) {
      const float32x4_t v = vaddq_f32(vsubq_f32(vmulq_f32(vld1q_f32(sp + 4 * j), acc[0][j]),
                                                vmulq_f32(vld1q_f32(sn + 4 * j), acc[1][j])),
                                      vld1q_f32(b + 4 * j));
      vst1q_f32(tmp + 4 * j, Activate(act_, v));
    }
    const int valid = out_ - c < 16 ? out_ - c : 16;
    std::memcpy(y + c, tmp, sizeof(float) * valid);
  }

  // ---- fast: the reference's quantization, then one of the int8 paths ------------------------
  // q padded with zeros to `padded` taps (at least in_).
  float QuantizeRow(const float* x, int padded, int8_t* q) const {
    const float scale = QuantizeSymmetricInt8(x, in_, q);
    std::memset(q + in_, 0, padded - in_);
    return scale;
  }

  float Finish(int c, int32_t sum_p, int32_t sum_n, float scale) const {
    const float* sp = pos_.as<float>();
    const float* sn = neg_.as<float>();
    const float* b = bias_.as<float>();
    // The reference's expression, in its order (no FMA contraction in ISO C++ mode).
    const float v =
        scale * (sp[c] * static_cast<float>(sum_p) - sn[c] * static_cast<float>(sum_n)) + b[c];
    return ApplyActivation(act_, v);
  }

  void RowFastNibble(const float* x, float* y, ThreadPool* pool) {
    const int kp16 = RoundUp(in_, 16);
    const int groups = kp16 / 4;
    const size_t table_offset = static_cast<size_t>(RoundUp(kp16, 64));
    scratch_.Reserve(table_offset + static_cast<size_t>(groups) * 32);
    int8_t* q = scratch_.as<int8_t>();
    uint8_t* tables = scratch_.as<uint8_t>() + table_offset;
    const float scale = QuantizeRow(x, kp16, q);
    // tables[g] = {Σ lo nibbles of u over each subset m of taps 4g..4g+3 (16 B), the same for
    // the hi nibbles (16 B)}, u = q + 128; entry m builds on entry m without its top bit.
    for (int g = 0; g < groups; ++g) {
      uint8_t* lo = tables + 32 * g;
      uint8_t* hi = lo + 16;
      lo[0] = hi[0] = 0;
      for (int m = 1; m < 16; ++m) {
        const int top = 31 - __builtin_clz(static_cast<unsigned>(m));
        const uint8_t u = static_cast<uint8_t>(q[4 * g + top] + 128);
        lo[m] = static_cast<uint8_t>(lo[m ^ (1 << top)] + (u & 15));
        hi[m] = static_cast<uint8_t>(hi[m ^ (1 << top)] + (u >> 4));
      }
    }
    const int tiles = (out_ + 31) / 32;
    ParallelFor(pool, tiles, [&](int begin, int end) {
      for (int t = begin; t < end; ++t) NibbleTile(tables, kp16, scale, t, y);
    });
  }

  void NibbleTile(const uint8_t* tables, int kp16, float scale, int tile, float* y) const {
    const int pairs = kp16 / 8, chunks = kp16 / 16;
    const uint8_t* w = planes_.as<uint8_t>() + static_cast<size_t>(tile) * pairs * 64;
    const uint8x16_t low4 = vdupq_n_u8(0x0f);
    const uint8x8_t sixteen = vdup_n_u8(16);
    // acc[plane][output 0..31]
    uint32x4_t acc[2][8];
    for (auto& plane : acc) {
      for (auto& a : plane) a = vdupq_n_u32(0);
    }
    for (int c0 = 0; c0 < chunks; c0 += 16) {
      // u16 lanes: at most 16 chunks · (240 + 16·240) = 65280.
      const int c1 = c0 + 16 < chunks ? c0 + 16 : chunks;
      // w16[plane][half][2]: outputs 16·half + 0..7, + 8..15.
      uint16x8_t w16[2][2][2];
      for (auto& a : w16) {
        for (auto& b : a) b[0] = b[1] = vdupq_n_u16(0);
      }
      for (int chunk = c0; chunk < c1; ++chunk) {
        // u8 lanes: 4 lookups of at most 60 each. [plane][half]
        uint8x16_t l[2][2], h[2][2];
        for (int pl = 0; pl < 2; ++pl) {
          for (int hf = 0; hf < 2; ++hf) l[pl][hf] = h[pl][hf] = vdupq_n_u8(0);
        }
#pragma GCC unroll 2
        for (int pp = 0; pp < 2; ++pp) {
          const int pair = 2 * chunk + pp;
          const uint8_t* wp = w + static_cast<size_t>(pair) * 64;
          const uint8_t* tb = tables + static_cast<size_t>(pair) * 64;  // groups 2·pair, +1
          const uint8x16_t tl0 = vld1q_u8(tb), th0 = vld1q_u8(tb + 16);
          const uint8x16_t tl1 = vld1q_u8(tb + 32), th1 = vld1q_u8(tb + 48);
#pragma GCC unroll 2
          for (int pl = 0; pl < 2; ++pl) {
#pragma GCC unroll 2
            for (int hf = 0; hf < 2; ++hf) {
              const uint8x16_t bits = vld1q_u8(wp + 32 * pl + 16 * hf);
              const uint8x16_t m0 = vandq_u8(bits, low4);  // taps 8·pair + 0..3
              const uint8x16_t m1 = vshrq_n_u8(bits, 4);   // taps 8·pair + 4..7
              l[pl][hf] = vaddq_u8(l[pl][hf], vaddq_u8(vqtbl1q_u8(tl0, m0), vqtbl1q_u8(tl1, m1)));
              h[pl][hf] = vaddq_u8(h[pl][hf], vaddq_u8(vqtbl1q_u8(th0, m0), vqtbl1q_u8(th1, m1)));
            }
          }
        }
        for (int pl = 0; pl < 2; ++pl) {
          for (int hf = 0; hf < 2; ++hf) {
            uint16x8_t* a = w16[pl][hf];
            a[0] =
                vmlal_u8(vaddw_u8(a[0], vget_low_u8(l[pl][hf])), vget_low_u8(h[pl][hf]), sixteen);
            a[1] = vmlal_high_u8(vaddw_high_u8(a[1], l[pl][hf]), h[pl][hf], vdupq_n_u8(16));
          }
        }
      }
      for (int pl = 0; pl < 2; ++pl) {
        for (int hf = 0; hf < 2; ++hf) {
          for (int i = 0; i < 2; ++i) {
            uint32x4_t* a = &acc[pl][hf * 4 + i * 2];
            a[0] = vaddw_u16(a[0], vget_low_u16(w16[pl][hf][i]));
            a[1] = vaddw_high_u16(a[1], w16[pl][hf][i]);
          }
        }
      }
    }
    alignas(16) int32_t sums[2][32];
    for (int pl = 0; pl < 2; ++pl) {
      for (int i = 0; i < 8; ++i) vst1q_s32(sums[pl] + 4 * i, vreinterpretq_s32_u32(acc[pl][i]));
    }
    const int32_t* counts = counts_.as<int32_t>();
    const int c_begin = tile * 32;
    const int valid = out_ - c_begin < 32 ? out_ - c_begin : 32;
    for (int o = 0; o < valid; ++o) {
      const int c = c_begin + o;
      y[c] =
          Finish(c, sums[0][o] - 128 * counts[2 * c], sums[1][o] - 128 * counts[2 * c + 1], scale);
    }
  }

  void RowFastBitSliced(const float* x, float* y, ThreadPool* pool) {
    const int blocks = (in_ + 127) / 128;
    const int quads = (out_ + 3) / 4;
    const size_t q_bytes = static_cast<size_t>(blocks) * 128;
    scratch_.Reserve(q_bytes + sizeof(int32_t) * 8 * static_cast<size_t>(quads));
    int8_t* q = scratch_.as<int8_t>();
    int32_t* sums = reinterpret_cast<int32_t*>(scratch_.as<uint8_t>() + q_bytes);
    const float scale = QuantizeRow(x, blocks * 128, q);
    const uint8_t* planes = planes_.as<uint8_t>();
    ParallelFor(pool, quads, [&](int begin, int end) {
      neon::FullyConnectedBitSlicedDotprod(planes, q, blocks, begin, end, sums);
      const int c_end = end * 4 < out_ ? end * 4 : out_;
      for (int c = begin * 4; c < c_end; ++c) y[c] = Finish(c, sums[2 * c], sums[2 * c + 1], scale);
    });
  }

  const int in_, out_;
  const Activation act_;
  const Path path_;
  AlignedBuffer planes_, pos_, neg_, bias_, counts_;
  AlignedBuffer scratch_;
};

}  // namespace

std::unique_ptr<TernaryKernel> CreateFullyConnectedNeon(const OpParams& p, const TernaryWeights& w,
                                                        NumericMode mode, bool dotprod) {
  if (p.kind != OpKind::kFullyConnected || p.in_channels < 1 || p.out_channels < 1) return nullptr;
  using Path = FullyConnectedNeon::Path;
  const Path path = mode == NumericMode::kExact
                        ? Path::kExactNibble
                        : (dotprod ? Path::kFastBitSlicedDotprod : Path::kFastNibble);
  return std::unique_ptr<TernaryKernel>(new FullyConnectedNeon(p, w, path));
}

}  // namespace optimized
}  // namespace core
}  // namespace ttq
