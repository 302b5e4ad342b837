// Fully connected kernels for aarch64 NEON. Weights stay 2 bits per weight or less in memory
// (≈2.13 in exact mode): batch-1 FC reads every weight once per row and is bound by weight
// traffic, so no int8 or float copy of the weights exists. Layouts are those of the x86 kernels
// (docs/kernel_layout.md of issue 9) where they fit NEON:
//   exact:          triplet planes (PackTripletPlanes): per group of 3 taps an 8-float table of
//                   the sums of x over every subset, looked up for 4 outputs at once with
//                   `tbl` (vqtbl2q_u8 on the 32-byte table, byte indices 4·m + 0..3).
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
      uint8_t* plane = quad + static_cast<size_t>(block) * 128 + (c % 4) * 32 + (row[t] > 0 ? 0 : 16);
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
  enum class Path { kExactTriplet, kFastNibble, kFastBitSlicedDotprod };

  FullyConnectedNeon(const OpParams& p, const TernaryWeights& w, Path path)
      : in_(p.in_channels), out_(p.out_channels), act_(p.activation), path_(path) {
    switch (path) {
      case Path::kExactTriplet:
        PackTripletPlanes(w.trits, out_, in_, &planes_);
        break;
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

  void RunFullyConnected(int rows, const float* input, float* output,
                         ThreadPool* pool) override {
    for (int r = 0; r < rows; ++r) {
      const float* x = input + static_cast<int64_t>(r) * in_;
      float* y = output + static_cast<int64_t>(r) * out_;
      switch (path_) {
        case Path::kExactTriplet:
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
      case Path::kExactTriplet:
        return "neon_fc_triplet_lut_f32";
      case Path::kFastNibble:
        return "neon_fc_nibble_lut_int8";
      case Path::kFastBitSlicedDotprod:
        return "neon_dotprod_fc_bitsliced_sdot_int8";
    }
    return "?";
  }

 private:
  // ---- exact: triplet planes + 8-float subset tables ----------------------------------------
  void RowExact(const float* x, float* y, ThreadPool* pool) {
    const int words = (in_ + 29) / 30;
    const int groups = words * 10;
    scratch_.Reserve(sizeof(float) * static_cast<size_t>(groups) * 8);
    float* tables = scratch_.as<float>();
    for (int g = 0; g < groups; ++g) {
      float v[3];
      for (int i = 0; i < 3; ++i) v[i] = 3 * g + i < in_ ? x[3 * g + i] : 0.0f;
      float* t = tables + 8 * g;
      for (int m = 0; m < 8; ++m) {
        // Same summation order for every subset: ((x0) + x1) + x2 over the members.
        float s = 0.0f;
        for (int i = 0; i < 3; ++i) {
          if (m & (1 << i)) s += v[i];
        }
        t[m] = s;
      }
    }
    const int tiles = (out_ + 7) / 8;
    ParallelFor(pool, tiles, [&](int begin, int end) {
      for (int t = begin; t < end; ++t) ExactTile(tables, words, t, y);
    });
  }

  void ExactTile(const float* tables, int words, int tile, float* y) const {
    const uint8_t* w = planes_.as<uint8_t>() + static_cast<size_t>(tile) * words * 64;
    const uint32x4_t seven = vdupq_n_u32(7);
    // Byte b of the float at index m of a 32-byte table is byte 4·m + b.
    const uint32x4_t byte_of_float = vdupq_n_u32(0x03020100u);
    float32x4_t ap0 = vdupq_n_f32(0.0f), ap1 = ap0, an0 = ap0, an1 = ap0;
    for (int word = 0; word < words; ++word) {
      const uint8_t* ww = w + static_cast<size_t>(word) * 64;
      uint32x4_t p0 = vld1q_u32(reinterpret_cast<const uint32_t*>(ww));
      uint32x4_t p1 = vld1q_u32(reinterpret_cast<const uint32_t*>(ww + 16));
      uint32x4_t n0 = vld1q_u32(reinterpret_cast<const uint32_t*>(ww + 32));
      uint32x4_t n1 = vld1q_u32(reinterpret_cast<const uint32_t*>(ww + 48));
      const uint8_t* tb = reinterpret_cast<const uint8_t*>(tables + static_cast<size_t>(word) * 80);
#pragma GCC unroll 10
      for (int j = 0; j < 10; ++j) {
        const uint8x16x2_t table = vld1q_u8_x2(tb + 32 * j);
        auto lookup = [&](uint32x4_t masks) {
          const uint32x4_t idx = vmlaq_n_u32(byte_of_float, vandq_u32(masks, seven), 0x04040404u);
          return vreinterpretq_f32_u8(vqtbl2q_u8(table, vreinterpretq_u8_u32(idx)));
        };
        ap0 = vaddq_f32(ap0, lookup(p0));
        ap1 = vaddq_f32(ap1, lookup(p1));
        an0 = vaddq_f32(an0, lookup(n0));
        an1 = vaddq_f32(an1, lookup(n1));
        p0 = vshrq_n_u32(p0, 3);
        p1 = vshrq_n_u32(p1, 3);
        n0 = vshrq_n_u32(n0, 3);
        n1 = vshrq_n_u32(n1, 3);
      }
    }
    const int c = tile * 8;
    const float* sp = pos_.as<float>() + c;
    const float* sn = neg_.as<float>() + c;
    const float* b = bias_.as<float>() + c;
    float32x4_t v0 = vaddq_f32(vmlsq_f32(vmulq_f32(vld1q_f32(sp), ap0), vld1q_f32(sn), an0),
                               vld1q_f32(b));
    float32x4_t v1 = vaddq_f32(vmlsq_f32(vmulq_f32(vld1q_f32(sp + 4), ap1), vld1q_f32(sn + 4), an1),
                               vld1q_f32(b + 4));
    alignas(16) float tmp[8];
    vst1q_f32(tmp, Activate(act_, v0));
    vst1q_f32(tmp + 4, Activate(act_, v1));
    const int valid = out_ - c < 8 ? out_ - c : 8;
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
    const float v = scale * (sp[c] * static_cast<float>(sum_p) - sn[c] * static_cast<float>(sum_n)) +
                    b[c];
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
            a[0] = vmlal_u8(vaddw_u8(a[0], vget_low_u8(l[pl][hf])), vget_low_u8(h[pl][hf]), sixteen);
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
      y[c] = Finish(c, sums[0][o] - 128 * counts[2 * c], sums[1][o] - 128 * counts[2 * c + 1], scale);
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

std::unique_ptr<TernaryKernel> CreateFullyConnectedNeon(const OpParams& p,
                                                        const TernaryWeights& w, NumericMode mode,
                                                        bool dotprod) {
  if (p.kind != OpKind::kFullyConnected || p.in_channels < 1 || p.out_channels < 1) return nullptr;
  using Path = FullyConnectedNeon::Path;
  const Path path = mode == NumericMode::kExact
                        ? Path::kExactTriplet
                        : (dotprod ? Path::kFastBitSlicedDotprod : Path::kFastNibble);
  return std::unique_ptr<TernaryKernel>(new FullyConnectedNeon(p, w, path));
}

}  // namespace optimized
}  // namespace core
}  // namespace ttq
