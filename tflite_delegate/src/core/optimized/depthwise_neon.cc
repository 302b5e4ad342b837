// Depthwise conv for aarch64 NEON, direct: per output pixel and group of output channels,
// accumulate the taps through the cached indirection offsets. The input image is first copied
// with its channels expanded to the output channels (channel c reads input channel
// c / depth_multiplier) and padded with zeros to a multiple of 8 (exact) or 16 (fast), so every
// channel group is one contiguous load, for any depth multiplier.
//   exact: float weights [KH·KW][C_out padded to 8] (PackBlockedFloatWeights), vfmaq_f32 on 4
//          channels.
//   fast:  the image quantized with the reference's rule (int8, one scale per image); P and N
//          0/1 byte planes [KH·KW][C_out padded to 16]; vmlal_s8 / vmlal_high_s8 into int16 per
//          16 channels,
//          widened to int32 every 256 taps; exact sums, the reference's final expression.
// Depthwise has no reduction over channels for SDOT to speed up (9 taps per channel), so the
// dotprod family uses this kernel too.
#include <arm_neon.h>

#include <cstring>

#include "core/optimized/internal.h"
#include "core/optimized/neon_internal.h"
#include "core/reference_kernels.h"
#include "core/thread_pool.h"

namespace ttq {
namespace core {
namespace optimized {
namespace {

inline float32x4_t Activate(Activation a, float32x4_t v) {
  if (a == Activation::kNone) return v;
  v = vmaxq_f32(v, vdupq_n_f32(0.0f));
  if (a == Activation::kRelu6) v = vminq_f32(v, vdupq_n_f32(6.0f));
  return v;
}

class DepthwiseNeon final : public TernaryKernel {
 public:
  DepthwiseNeon(const OpParams& p, const TernaryWeights& w, NumericMode mode)
      : p_(p),
        mode_(mode),
        taps_(p.kernel_height * p.kernel_width),
        cpad_(RoundUp(p.out_channels, mode == NumericMode::kExact ? 8 : 16)) {
    if (mode == NumericMode::kExact) {
      PackBlockedFloatWeights(w, p.out_channels, taps_, cpad_, &weights_);
    } else {
      const size_t bytes = static_cast<size_t>(taps_) * cpad_;
      weights_.Reserve(2 * bytes);  // [P: taps][cpad], [N: taps][cpad], zero-filled
      int8_t* planes = weights_.as<int8_t>();
      for (int c = 0; c < p.out_channels; ++c) {
        for (int t = 0; t < taps_; ++t) {
          const int8_t v = w.trits[static_cast<int64_t>(c) * taps_ + t];
          if (v != 0) planes[(v > 0 ? 0 : bytes) + static_cast<size_t>(t) * cpad_ + c] = 1;
        }
      }
    }
    PackChannelVector(w.pos_scales, p.out_channels, 8, &pos_);
    PackChannelVector(w.neg_scales, p.out_channels, 8, &neg_);
    PackChannelVector(w.bias, p.out_channels, 8, &bias_);
  }

  void RunConv(const ConvShape& s, const float* input, float* output, ThreadPool* pool) override {
    offsets_.Update(p_, s);
    UpdateTapRows(s);
    const int64_t in_pixels = static_cast<int64_t>(s.in_height) * s.in_width;
    const int64_t image = in_pixels * p_.in_channels;
    const int pixels = s.out_height * s.out_width;
    const int dm = p_.depth_multiplier;
    // Expanded image: [batch][in_pixels][cpad_] plus one zero pixel for padding taps.
    const size_t expanded = static_cast<size_t>(in_pixels * cpad_);
    const size_t elem = mode_ == NumericMode::kExact ? sizeof(float) : 1;
    scratch_.Reserve(elem * (expanded * s.batch + cpad_) + in_pixels * p_.in_channels);
    image_scales_.Reserve(sizeof(float) * s.batch);
    for (int n = 0; n < s.batch; ++n) {
      const float* x = input + n * image;
      if (mode_ == NumericMode::kExact) {
        float* dst = scratch_.as<float>() + n * expanded;
        for (int64_t i = 0; i < in_pixels; ++i) {
          for (int c = 0; c < p_.out_channels; ++c)
            dst[i * cpad_ + c] = x[i * p_.in_channels + c / dm];
        }
      } else {
        int8_t* q = scratch_.as<int8_t>() + expanded * s.batch + cpad_;  // after the zero pixel
        image_scales_.as<float>()[n] = QuantizeSymmetricInt8(x, image, q);
        int8_t* dst = scratch_.as<int8_t>() + n * expanded;
        for (int64_t i = 0; i < in_pixels; ++i) {
          for (int c = 0; c < p_.out_channels; ++c)
            dst[i * cpad_ + c] = q[i * p_.in_channels + c / dm];
        }
      }
    }
    // The zero pixel (padding taps) after the expanded images.
    std::memset(scratch_.as<uint8_t>() + elem * expanded * s.batch, 0, elem * cpad_);
    ParallelFor(pool, s.batch * pixels, [&](int begin, int end) {
      for (int u = begin; u < end; ++u) {
        const int n = u / pixels, m = u % pixels;
        const int32_t* offs = tap_rows_.as<int32_t>() + static_cast<int64_t>(m) * taps_;
        float* out = output + static_cast<int64_t>(u) * p_.out_channels;
        if (mode_ == NumericMode::kExact) {
          PixelFloat(scratch_.as<float>(), n, expanded * s.batch, expanded, offs, out);
        } else {
          PixelInt8(scratch_.as<int8_t>(), n, expanded * s.batch, expanded, offs,
                    image_scales_.as<float>()[n], out);
        }
      }
    });
  }

  void RunFullyConnected(int, const float*, float*, ThreadPool*) override {}

  const char* Name() const override {
    return mode_ == NumericMode::kExact ? "neon_depthwise_f32" : "neon_depthwise_smlal_int8";
  }

 private:
  // tap_rows_[m·taps + t]: the expanded-image element offset (pixel · cpad_) of the pixel tap t
  // of output pixel m reads, or −1 for padding: ConvOffsets divided by in_channels once per
  // geometry, not per tap.
  void UpdateTapRows(const ConvShape& s) {
    if (rows_valid_ && s.in_height == rows_shape_.in_height && s.in_width == rows_shape_.in_width &&
        s.out_height == rows_shape_.out_height && s.out_width == rows_shape_.out_width &&
        s.pad_top == rows_shape_.pad_top && s.pad_left == rows_shape_.pad_left) {
      return;
    }
    const int64_t n = static_cast<int64_t>(s.out_height) * s.out_width * taps_;
    tap_rows_.Reserve(sizeof(int32_t) * static_cast<size_t>(n));
    const int32_t* src = offsets_.data();
    int32_t* dst = tap_rows_.as<int32_t>();
    for (int64_t i = 0; i < n; ++i) dst[i] = src[i] < 0 ? -1 : src[i] / p_.in_channels * cpad_;
    rows_shape_ = s;
    rows_valid_ = true;
  }

  // Row of tap offset `off` for image n: the expanded pixel, or the zero pixel at `zero_at`.
  template <typename T>
  static const T* TapRow(const T* base, int n, size_t zero_at, size_t expanded, int32_t off) {
    return off < 0 ? base + zero_at : base + n * expanded + off;
  }

  void PixelFloat(const float* base, int n, size_t zero_at, size_t expanded, const int32_t* offs,
                  float* out) const {
    const float* w = weights_.as<float>();
    const float* bias = bias_.as<float>();
    for (int c = 0; c < cpad_; c += 8) {
      float32x4_t a0 = vld1q_f32(bias + c), a1 = vld1q_f32(bias + c + 4);
      for (int t = 0; t < taps_; ++t) {
        const float* x = TapRow(base, n, zero_at, expanded, offs[t]) + c;
        const float* wt = w + static_cast<size_t>(t) * cpad_ + c;
        a0 = vfmaq_f32(a0, vld1q_f32(x), vld1q_f32(wt));
        a1 = vfmaq_f32(a1, vld1q_f32(x + 4), vld1q_f32(wt + 4));
      }
      const int valid = p_.out_channels - c < 8 ? p_.out_channels - c : 8;
      alignas(16) float tmp[8];
      vst1q_f32(tmp, Activate(p_.activation, a0));
      vst1q_f32(tmp + 4, Activate(p_.activation, a1));
      std::memcpy(out + c, tmp, sizeof(float) * valid);
    }
  }

  void PixelInt8(const int8_t* base, int n, size_t zero_at, size_t expanded, const int32_t* offs,
                 float scale, float* out) const {
    const int8_t* wp = weights_.as<int8_t>();
    const int8_t* wn = wp + static_cast<size_t>(taps_) * cpad_;
    const float* sp = pos_.as<float>();
    const float* sn = neg_.as<float>();
    const float* b = bias_.as<float>();
    for (int c = 0; c < cpad_; c += 16) {
      // 16 channels per step (fast mode pads the channels to a multiple of 16).
      int32x4_t acc[2][4];  // [P, N][channels 0..3, 4..7, 8..11, 12..15]
      for (auto& plane : acc) {
        for (auto& v : plane) v = vdupq_n_s32(0);
      }
      for (int t0 = 0; t0 < taps_; t0 += 256) {
        // int16 lanes: at most 256 · 127 = 32512.
        const int t1 = t0 + 256 < taps_ ? t0 + 256 : taps_;
        int16x8_t ap0 = vdupq_n_s16(0), ap1 = ap0, an0 = ap0, an1 = ap0;
        for (int t = t0; t < t1; ++t) {
          const int8x16_t x = vld1q_s8(TapRow(base, n, zero_at, expanded, offs[t]) + c);
          const int8x16_t p = vld1q_s8(wp + static_cast<size_t>(t) * cpad_ + c);
          const int8x16_t q = vld1q_s8(wn + static_cast<size_t>(t) * cpad_ + c);
          ap0 = vmlal_s8(ap0, vget_low_s8(x), vget_low_s8(p));
          ap1 = vmlal_high_s8(ap1, x, p);
          an0 = vmlal_s8(an0, vget_low_s8(x), vget_low_s8(q));
          an1 = vmlal_high_s8(an1, x, q);
        }
        acc[0][0] = vaddw_s16(acc[0][0], vget_low_s16(ap0));
        acc[0][1] = vaddw_high_s16(acc[0][1], ap0);
        acc[0][2] = vaddw_s16(acc[0][2], vget_low_s16(ap1));
        acc[0][3] = vaddw_high_s16(acc[0][3], ap1);
        acc[1][0] = vaddw_s16(acc[1][0], vget_low_s16(an0));
        acc[1][1] = vaddw_high_s16(acc[1][1], an0);
        acc[1][2] = vaddw_s16(acc[1][2], vget_low_s16(an1));
        acc[1][3] = vaddw_high_s16(acc[1][3], an1);
      }
      alignas(16) int32_t sums[2][16];
      for (int pl = 0; pl < 2; ++pl) {
        for (int i = 0; i < 4; ++i) vst1q_s32(sums[pl] + 4 * i, acc[pl][i]);
      }
      const int valid = p_.out_channels - c < 16 ? p_.out_channels - c : 16;
      for (int o = 0; o < valid; ++o) {
        const int ch = c + o;
        // The reference's expression, in its order.
        const float v = scale * (sp[ch] * static_cast<float>(sums[0][o]) -
                                 sn[ch] * static_cast<float>(sums[1][o])) +
                        b[ch];
        out[ch] = ApplyActivation(p_.activation, v);
      }
    }
  }

  const OpParams p_;
  const NumericMode mode_;
  const int taps_, cpad_;
  AlignedBuffer weights_, pos_, neg_, bias_, scratch_, image_scales_, tap_rows_;
  ConvOffsets offsets_;
  ConvShape rows_shape_;
  bool rows_valid_ = false;
};

}  // namespace

std::unique_ptr<TernaryKernel> CreateDepthwiseNeon(const OpParams& p, const TernaryWeights& w,
                                                   NumericMode mode) {
  if (p.kind != OpKind::kDepthwiseConv2D || p.depth_multiplier < 1 || p.in_channels < 1) {
    return nullptr;
  }
  return std::unique_ptr<TernaryKernel>(new DepthwiseNeon(p, w, mode));
}

}  // namespace optimized
}  // namespace core
}  // namespace ttq
