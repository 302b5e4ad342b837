// Depthwise conv for AVX2 + FMA, direct: for every output pixel and group of 8 output channels,
// accumulate the taps (through the cached indirection offsets) with float weights
// w = s⁺/−s⁻/0 stored [KH·KW][C_out padded to 8]. Depth multiplier 1 loads 8 consecutive input
// channels; a multiplier > 1 gathers input channel c / depth_multiplier.
// Fast (int8) mode runs the same loop on the image quantized and dequantized with the
// reference's rule.
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "core/optimized/internal.h"
#include "core/thread_pool.h"

namespace ttq {
namespace core {
namespace optimized {
namespace {

#include "core/optimized/simd_avx2.inc"

class DepthwiseAvx2 final : public TernaryKernel {
 public:
  DepthwiseAvx2(const OpParams& p, const TernaryWeights& w, NumericMode mode)
      : p_(p),
        mode_(mode),
        taps_(p.kernel_height * p.kernel_width),
        cpad_(RoundUp(p.out_channels, 8)) {
    // One block of cpad_ channels: [taps][cpad_].
    PackBlockedFloatWeights(w, p.out_channels, taps_, cpad_, &weights_);
    PackChannelVector(w.bias, p.out_channels, 8, &bias_);
  }

  void RunConv(const ConvShape& s, const float* input, float* output, ThreadPool* pool) override {
    offsets_.Update(p_, s);
    const int64_t image = static_cast<int64_t>(s.in_height) * s.in_width * p_.in_channels;
    const int pixels = s.out_height * s.out_width;
    const float* x = input;
    if (mode_ == NumericMode::kFastInt8) {
      scratch_.Reserve(sizeof(float) * static_cast<size_t>(image * s.batch));
      float* deq = scratch_.as<float>();
      for (int n = 0; n < s.batch; ++n) {
        QuantizeDequantizeAvx2(input + n * image, image, deq + n * image);
      }
      x = deq;
    }
    ParallelFor(pool, s.batch * pixels, [&](int begin, int end) {
      for (int u = begin; u < end; ++u) {
        const int n = u / pixels, m = u % pixels;
        Pixel(x + n * image, offsets_.data() + static_cast<int64_t>(m) * taps_,
              output + static_cast<int64_t>(u) * p_.out_channels);
      }
    });
  }

  void RunFullyConnected(int, const float*, float*, ThreadPool*) override {}
  const char* Name() const override {
    return mode_ == NumericMode::kExact ? "avx2_depthwise_f32" : "avx2_depthwise_int8dq";
  }

 private:
  void Pixel(const float* image, const int32_t* offs, float* out) const {
    const int cout = p_.out_channels, dm = p_.depth_multiplier;
    const float* wbase = weights_.as<float>();
    const float* bias = bias_.as<float>();
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int c = 0; c < cout; c += 8) {
      const int valid = cout - c < 8 ? cout - c : 8;
      const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), lane);
      __m256 acc = _mm256_load_ps(bias + c);
      if (dm == 1) {
        for (int t = 0; t < taps_; ++t) {
          const int32_t off = offs[t];
          if (off < 0) continue;
          const __m256 xv = valid == 8 ? _mm256_loadu_ps(image + off + c)
                                       : _mm256_maskload_ps(image + off + c, mask);
          acc =
              _mm256_fmadd_ps(xv, _mm256_load_ps(wbase + static_cast<int64_t>(t) * cpad_ + c), acc);
        }
      } else {
        // Input channel of output channel c + i is (c + i) / dm; invalid lanes read channel 0.
        alignas(32) int32_t idx[8];
        for (int i = 0; i < 8; ++i) idx[i] = i < valid ? (c + i) / dm : 0;
        const __m256i vidx = _mm256_load_si256(reinterpret_cast<const __m256i*>(idx));
        for (int t = 0; t < taps_; ++t) {
          const int32_t off = offs[t];
          if (off < 0) continue;
          const __m256 xv = _mm256_i32gather_ps(image + off, vidx, 4);
          acc =
              _mm256_fmadd_ps(xv, _mm256_load_ps(wbase + static_cast<int64_t>(t) * cpad_ + c), acc);
        }
      }
      acc = ActivateAvx2(p_.activation, acc);
      if (valid == 8) {
        _mm256_storeu_ps(out + c, acc);
      } else {
        _mm256_maskstore_ps(out + c, mask, acc);
      }
    }
  }

  const OpParams p_;
  const NumericMode mode_;
  const int taps_, cpad_;
  AlignedBuffer weights_, bias_, scratch_;
  ConvOffsets offsets_;
};

}  // namespace

std::unique_ptr<TernaryKernel> CreateDepthwiseAvx2(const OpParams& p, const TernaryWeights& w,
                                                   NumericMode mode) {
  if (p.kind != OpKind::kDepthwiseConv2D || p.depth_multiplier < 1) return nullptr;
  return std::unique_ptr<TernaryKernel>(new DepthwiseAvx2(p, w, mode));
}

}  // namespace optimized
}  // namespace core
}  // namespace ttq
