// Conv2D kernels for aarch64 NEON: an indirect GEMM over the cached per-pixel tap offsets
// (ConvOffsets, no im2col), one block of 8 output channels per micro-kernel call.
//   exact:  float weights w = s⁺ / −s⁻ / 0 blocked by 8 outputs, [C_out/8][KH·KW·C_in][8]
//           (PackBlockedFloatWeights); tile of 4 pixels × 8 outputs = 8 float32x4 accumulators,
//           per input channel 2 weight loads, 4 scalar loads and 8 FMAs (vfmaq_n_f32).
//   fast:   the image quantized once with the reference's rule (int8 q, one scale per image);
//           the P and N 0/1 byte planes of PackConvInt8Weights (nr = 8, the x86 int8 conv's
//           layout: 4 input channels × 4 outputs per 16 bytes); per tap and 4 input channels
//           the 4 channels of a pixel are broadcast and multiplied with both planes:
//             dotprod (conv_neon_dotprod.cc): vdotq_s32, tile of 4 pixels;
//             plain NEON (here): vmlal_s8 / vmlal_high_s8 into int16, vpadalq_s16 into int32
//             every 256 steps, tile of 2 pixels.
//           Signed q multiplies 0/1 weights, so Σ_P q and Σ_N q come out directly and exactly;
//           the final float expression is the reference's (equal up to the compiler's FMA
//           contraction of it).
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

namespace neon {

namespace {

inline int8x16_t LoadChannels4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return vreinterpretq_s8_s32(vdupq_n_s32(v));
}

// MR pixels × 8 outputs. Vector i of a step: plane P (i = 0, 1) or N (2, 3), outputs 4·(i % 2)
// + 0..3, 4 input channels each. vmlal_s8 / vmlal_high_s8 accumulate the int16 products of its
// low half (outputs 0, 1 of the vector) and high half (2, 3) per channel; every 256 steps
// (|q| ≤ 127: at most 32512 per int16 lane) vpadalq_s16 folds channel pairs into int32, and
// at the end vpaddq_s32 folds the remaining pairs: lane j = output j's 4-channel sum.
template <int MR>
void ConvInt8TileRows(const ConvInt8Args& a, int r0) {
  constexpr int kFlushSteps = 256;
  int32x4_t lo[MR][4], hi[MR][4];
  int16x8_t lo16[MR][4], hi16[MR][4];
  for (int r = 0; r < MR; ++r) {
    for (int i = 0; i < 4; ++i) {
      lo[r][i] = hi[r][i] = vdupq_n_s32(0);
      lo16[r][i] = hi16[r][i] = vdupq_n_s16(0);
    }
  }
  int used = 0;  // steps accumulated in the int16 lanes
  for (int t = 0; t < a.taps; ++t) {
    const int8_t* x[MR];
    for (int r = 0; r < MR; ++r) {
      const int32_t off = a.offsets[(r0 + r) * a.taps + t];
      x[r] = off < 0 ? a.zeros : a.image + off;
    }
    const int8_t* w = a.weights + static_cast<size_t>(t) * a.steps * 64;
    for (int s0 = 0; s0 < a.steps;) {
      const int s1 = a.steps - s0 < kFlushSteps - used ? a.steps : s0 + (kFlushSteps - used);
      for (int s = s0; s < s1; ++s) {
        int8x16_t wv[4];
        for (int i = 0; i < 4; ++i) wv[i] = vld1q_s8(w + 64 * s + 16 * i);
        for (int r = 0; r < MR; ++r) {
          const int8x16_t xv = LoadChannels4(x[r] + 4 * s);
          for (int i = 0; i < 4; ++i) {
            lo16[r][i] = vmlal_s8(lo16[r][i], vget_low_s8(wv[i]), vget_low_s8(xv));
            hi16[r][i] = vmlal_high_s8(hi16[r][i], wv[i], xv);
          }
        }
      }
      used += s1 - s0;
      s0 = s1;
      if (used == kFlushSteps) {
        for (int r = 0; r < MR; ++r) {
          for (int i = 0; i < 4; ++i) {
            lo[r][i] = vpadalq_s16(lo[r][i], lo16[r][i]);
            hi[r][i] = vpadalq_s16(hi[r][i], hi16[r][i]);
            lo16[r][i] = hi16[r][i] = vdupq_n_s16(0);
          }
        }
        used = 0;
      }
    }
  }
  for (int r = 0; r < MR; ++r) {
    int32_t* out = a.sums + (r0 + r) * 16;
    for (int i = 0; i < 4; ++i) {
      const int32x4_t l = vpadalq_s16(lo[r][i], lo16[r][i]);
      const int32x4_t h = vpadalq_s16(hi[r][i], hi16[r][i]);
      vst1q_s32(out + 4 * i, vpaddq_s32(l, h));
    }
  }
}

}  // namespace

void ConvInt8TileNeon(const ConvInt8Args& a) {
  int r = 0;
  for (; r + 2 <= a.rows; r += 2) ConvInt8TileRows<2>(a, r);
  if (r < a.rows) ConvInt8TileRows<1>(a, r);
}

}  // namespace neon

namespace {

inline float32x4_t Activate(Activation a, float32x4_t v) {
  if (a == Activation::kNone) return v;
  v = vmaxq_f32(v, vdupq_n_f32(0.0f));
  if (a == Activation::kRelu6) v = vminq_f32(v, vdupq_n_f32(6.0f));
  return v;
}

constexpr int kFloatTileRows = 4;

class ConvNeon final : public TernaryKernel {
 public:
  ConvNeon(const OpParams& p, const TernaryWeights& w, NumericMode mode, bool dotprod)
      : p_(p),
        mode_(mode),
        dotprod_(dotprod),
        taps_(p.kernel_height * p.kernel_width),
        k_(taps_ * p.in_channels),
        cp_(RoundUp(p.in_channels, 4)),
        blocks_((p.out_channels + 7) / 8) {
    if (mode == NumericMode::kExact) {
      PackBlockedFloatWeights(w, p.out_channels, k_, 8, &weights_);
    } else {
      AlignedBuffer unused_counts;
      PackConvInt8Weights(w.trits, p.out_channels, taps_, p.in_channels, 8, &weights_,
                          &unused_counts);
    }
    PackChannelVector(w.pos_scales, p.out_channels, 8, &pos_);
    PackChannelVector(w.neg_scales, p.out_channels, 8, &neg_);
    PackChannelVector(w.bias, p.out_channels, 8, &bias_);
    zeros_.Reserve(sizeof(float) * static_cast<size_t>(cp_) + 64);  // zero-filled
  }

  void RunConv(const ConvShape& s, const float* input, float* output, ThreadPool* pool) override {
    offsets_.Update(p_, s);
    const int64_t image = static_cast<int64_t>(s.in_height) * s.in_width * p_.in_channels;
    const int pixels = s.out_height * s.out_width;
    const int64_t out_image = static_cast<int64_t>(pixels) * p_.out_channels;
    for (int n = 0; n < s.batch; ++n) {
      if (mode_ == NumericMode::kExact) {
        RunFloatImage(input + n * image, pixels, output + n * out_image, pool);
      } else {
        RunInt8Image(input + n * image, image, pixels, output + n * out_image, pool);
      }
    }
  }

  void RunFullyConnected(int, const float*, float*, ThreadPool*) override {}

  const char* Name() const override {
    if (mode_ == NumericMode::kExact) return "neon_conv_f32";
    return dotprod_ ? "neon_dotprod_conv_sdot_int8" : "neon_conv_smlal_int8";
  }

 private:
  // ---- exact ---------------------------------------------------------------------------------
  template <int MR>
  void FloatTile(const float* img, int m0, int block, float* y) const {
    const int cin = p_.in_channels;
    const float* wblock = weights_.as<float>() + static_cast<size_t>(block) * k_ * 8;
    const float* bias = bias_.as<float>() + block * 8;
    float32x4_t acc[MR][2];
    for (int r = 0; r < MR; ++r) {
      acc[r][0] = vld1q_f32(bias);
      acc[r][1] = vld1q_f32(bias + 4);
    }
    const int32_t* offs = offsets_.data() + static_cast<int64_t>(m0) * taps_;
    for (int t = 0; t < taps_; ++t) {
      const float* x[MR];
      for (int r = 0; r < MR; ++r) {
        const int32_t off = offs[r * taps_ + t];
        x[r] = off < 0 ? zeros_.as<float>() : img + off;
      }
      const float* wt = wblock + static_cast<size_t>(t) * cin * 8;
      for (int ci = 0; ci < cin; ++ci) {
        const float32x4_t w0 = vld1q_f32(wt + 8 * ci), w1 = vld1q_f32(wt + 8 * ci + 4);
        for (int r = 0; r < MR; ++r) {
          const float xs = x[r][ci];
          acc[r][0] = vfmaq_n_f32(acc[r][0], w0, xs);
          acc[r][1] = vfmaq_n_f32(acc[r][1], w1, xs);
        }
      }
    }
    const int c = block * 8;
    const int valid = p_.out_channels - c < 8 ? p_.out_channels - c : 8;
    for (int r = 0; r < MR; ++r) {
      float* out = y + static_cast<int64_t>(m0 + r) * p_.out_channels + c;
      if (valid == 8) {
        vst1q_f32(out, Activate(p_.activation, acc[r][0]));
        vst1q_f32(out + 4, Activate(p_.activation, acc[r][1]));
      } else {
        alignas(16) float tmp[8];
        vst1q_f32(tmp, Activate(p_.activation, acc[r][0]));
        vst1q_f32(tmp + 4, Activate(p_.activation, acc[r][1]));
        std::memcpy(out, tmp, sizeof(float) * valid);
      }
    }
  }

  void RunFloatImage(const float* img, int pixels, float* y, ThreadPool* pool) const {
    const int tiles = (pixels + kFloatTileRows - 1) / kFloatTileRows;
    ParallelFor(pool, tiles * blocks_, [&](int begin, int end) {
      for (int item = begin; item < end; ++item) {
        const int tile = item / blocks_, block = item % blocks_;
        const int m0 = tile * kFloatTileRows;
        switch (pixels - m0 < kFloatTileRows ? pixels - m0 : kFloatTileRows) {
          case 4:
            FloatTile<4>(img, m0, block, y);
            break;
          case 3:
            FloatTile<3>(img, m0, block, y);
            break;
          case 2:
            FloatTile<2>(img, m0, block, y);
            break;
          default:
            FloatTile<1>(img, m0, block, y);
            break;
        }
      }
    });
  }

  // ---- fast (int8) ---------------------------------------------------------------------------
  void RunInt8Image(const float* x, int64_t image, int pixels, float* y, ThreadPool* pool) {
    // Slack: the last pixel's 4-channel groups may read up to 3 bytes past the image.
    q_.Reserve(static_cast<size_t>(image) + 16);
    int8_t* q = q_.as<int8_t>();
    const float scale = QuantizeSymmetricInt8(x, image, q);
    std::memset(q + image, 0, 16);
    const int rows = neon::kConvInt8TileRows;
    const int tiles = (pixels + rows - 1) / rows;
    void (*tile_fn)(const neon::ConvInt8Args&) =
        dotprod_ ? neon::ConvInt8TileDotprod : neon::ConvInt8TileNeon;
    const size_t block_bytes = static_cast<size_t>(taps_) * (cp_ / 4) * 64;
    ParallelFor(pool, tiles * blocks_, [&](int begin, int end) {
      alignas(16) int32_t sums[neon::kConvInt8TileRows * 16];
      for (int item = begin; item < end; ++item) {
        const int tile = item / blocks_, block = item % blocks_;
        const int m0 = tile * rows;
        neon::ConvInt8Args a;
        a.offsets = offsets_.data() + static_cast<int64_t>(m0) * taps_;
        a.rows = pixels - m0 < rows ? pixels - m0 : rows;
        a.taps = taps_;
        a.steps = cp_ / 4;
        a.image = q;
        a.zeros = zeros_.as<int8_t>();
        a.weights = weights_.as<int8_t>() + block_bytes * block;
        a.sums = sums;
        tile_fn(a);
        const int c0 = block * 8;
        const int valid = p_.out_channels - c0 < 8 ? p_.out_channels - c0 : 8;
        const float* sp = pos_.as<float>();
        const float* sn = neg_.as<float>();
        const float* b = bias_.as<float>();
        for (int r = 0; r < a.rows; ++r) {
          float* out = y + static_cast<int64_t>(m0 + r) * p_.out_channels;
          for (int o = 0; o < valid; ++o) {
            const int c = c0 + o;
            // The reference's expression, in its order.
            const float v = scale * (sp[c] * static_cast<float>(sums[r * 16 + o]) -
                                     sn[c] * static_cast<float>(sums[r * 16 + 8 + o])) +
                            b[c];
            out[c] = ApplyActivation(p_.activation, v);
          }
        }
      }
    });
  }

  const OpParams p_;
  const NumericMode mode_;
  const bool dotprod_;
  const int taps_, k_, cp_, blocks_;
  AlignedBuffer weights_, pos_, neg_, bias_, zeros_, q_;
  ConvOffsets offsets_;
};

}  // namespace

std::unique_ptr<TernaryKernel> CreateConvNeon(const OpParams& p, const TernaryWeights& w,
                                              NumericMode mode, bool dotprod) {
  if (p.kind != OpKind::kConv2D || p.in_channels < 1 || p.out_channels < 1) return nullptr;
  return std::unique_ptr<TernaryKernel>(new ConvNeon(p, w, mode, dotprod));
}

}  // namespace optimized
}  // namespace core
}  // namespace ttq
