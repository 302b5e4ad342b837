// Conv2D for AVX2 + FMA: indirect GEMM with a 6 x 16 float register tile (12 accumulators),
// Winograd F(2x2, 3x3) on the same micro-kernel for 3x3 stride-1 convs (the default for them),
// and an int8 vpmaddubsw kernel kept for tests (slower than FMA without VNNI).
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "core/optimized/internal.h"
#include "core/thread_pool.h"

namespace ttq {
namespace core {
namespace optimized {
namespace {

// clang-format off: the implementation files use the SIMD helpers, so those come first.
#include "core/optimized/simd_avx2.inc"
#include "core/optimized/conv_impl.inc"
#include "core/optimized/conv_int8_impl.inc"
#include "core/optimized/winograd_impl.inc"
// clang-format on

struct MicroAvx2 {
  static constexpr int kMR = 6;

  template <int MR>
  static void Tile(const TileArgs& a) {
    __m256 acc0[MR], acc1[MR];
    const __m256 b0 = _mm256_load_ps(a.bias), b1 = _mm256_load_ps(a.bias + 8);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      acc0[r] = b0;
      acc1[r] = b1;
    }
    const float* w = a.weights;
    for (int t = 0; t < a.taps; ++t) {
      const float* x[MR];
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        // Branchless: padding taps (offset -1) read the zero row. Image borders make this
        // branch unpredictable.
        const int32_t off = a.offsets[r * a.taps + t];
        const uintptr_t inside = reinterpret_cast<uintptr_t>(a.image + (off & ~(off >> 31)));
        const uintptr_t zeros = reinterpret_cast<uintptr_t>(a.zeros);
        const uintptr_t pad = static_cast<uintptr_t>(static_cast<intptr_t>(off >> 31));
        x[r] = reinterpret_cast<const float*>(inside ^ ((inside ^ zeros) & pad));
      }
#pragma GCC unroll 4
      for (int ci = 0; ci < a.cin; ++ci) {
        const __m256 w0 = _mm256_load_ps(w), w1 = _mm256_load_ps(w + 8);
        w += kNR;
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r) {
          const __m256 xb = _mm256_broadcast_ss(x[r] + ci);
          acc0[r] = _mm256_fmadd_ps(xb, w0, acc0[r]);
          acc1[r] = _mm256_fmadd_ps(xb, w1, acc1[r]);
        }
      }
    }
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m256 y0 = ActivateAvx2(a.act, acc0[r]), y1 = ActivateAvx2(a.act, acc1[r]);
      float* out = a.out + static_cast<int64_t>(r) * a.out_stride;
      if (a.valid == kNR) {
        _mm256_storeu_ps(out, y0);
        _mm256_storeu_ps(out + 8, y1);
      } else {
        alignas(32) float tmp[kNR];
        _mm256_store_ps(tmp, y0);
        _mm256_store_ps(tmp + 8, y1);
        std::memcpy(out, tmp, sizeof(float) * a.valid);
      }
    }
  }
};

// Int8 tile: 6 pixels x 8 output channels x 2 planes. vpmaddubsw(u, 0/1 weights) gives pair
// sums <= 510 in int16; 64 steps fit (<= 32640) before they are widened to int32.
struct MicroI8Avx2 {
  static constexpr int kMR = 6;
  static constexpr int kNR = 8;

  template <int MR>
  static void Tile(const I8Args& a) {
    __m256i p16[MR], n16[MR], p32[MR], n32[MR];
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      p16[r] = n16[r] = p32[r] = n32[r] = _mm256_setzero_si256();
    }
    const __m256i ones16 = _mm256_set1_epi16(1);
    auto flush = [&] {
#pragma GCC unroll 16
      for (int r = 0; r < MR; ++r) {
        p32[r] = _mm256_add_epi32(p32[r], _mm256_madd_epi16(p16[r], ones16));
        n32[r] = _mm256_add_epi32(n32[r], _mm256_madd_epi16(n16[r], ones16));
        p16[r] = n16[r] = _mm256_setzero_si256();
      }
    };
    const uint8_t* w = a.weights;
    int pending = 0;
    for (int t = 0; t < a.taps; ++t) {
      const uint8_t* x[MR];
      SelectRows<MR>(a, t, x);
      for (int s = 0; s < a.steps; ++s) {
        const __m256i wp = _mm256_load_si256(reinterpret_cast<const __m256i*>(w));
        const __m256i wn = _mm256_load_si256(reinterpret_cast<const __m256i*>(w + 32));
        w += 64;
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r) {
          const __m256i u = _mm256_set1_epi32(Load4(x[r] + 4 * s));
          p16[r] = _mm256_add_epi16(p16[r], _mm256_maddubs_epi16(u, wp));
          n16[r] = _mm256_add_epi16(n16[r], _mm256_maddubs_epi16(u, wn));
        }
        if (++pending == 64) {
          flush();
          pending = 0;
        }
      }
    }
    flush();
    const __m256i cp = _mm256_load_si256(reinterpret_cast<const __m256i*>(a.count_p));
    const __m256i cn = _mm256_load_si256(reinterpret_cast<const __m256i*>(a.count_n));
    const __m256i c128p = _mm256_slli_epi32(cp, 7), c128n = _mm256_slli_epi32(cn, 7);
    const __m256 sp = _mm256_load_ps(a.pos), sn = _mm256_load_ps(a.neg);
    const __m256 b = _mm256_load_ps(a.bias), scale = _mm256_set1_ps(a.scale);
    const __m256i mask =
        _mm256_cmpgt_epi32(_mm256_set1_epi32(a.valid), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m256 fp = _mm256_cvtepi32_ps(_mm256_sub_epi32(p32[r], c128p));
      const __m256 fn = _mm256_cvtepi32_ps(_mm256_sub_epi32(n32[r], c128n));
      // The reference's expression: scale * (s⁺·ΣP − s⁻·ΣN) + b, no FMA contraction.
      __m256 y = _mm256_add_ps(
          _mm256_mul_ps(scale, _mm256_sub_ps(_mm256_mul_ps(sp, fp), _mm256_mul_ps(sn, fn))), b);
      y = ActivateAvx2(a.act, y);
      float* out = a.out + static_cast<int64_t>(r) * a.out_stride;
      if (a.valid == kNR) {
        _mm256_storeu_ps(out, y);
      } else {
        _mm256_maskstore_ps(out, mask, y);
      }
    }
  }
};

}  // namespace

std::unique_ptr<TernaryKernel> CreateConvInt8Avx2(const OpParams& p, const TernaryWeights& w) {
  if (p.kind != OpKind::kConv2D) return nullptr;
  return std::unique_ptr<TernaryKernel>(new ConvInt8Kernel<MicroI8Avx2>(p, w, "avx2_conv_int8"));
}

std::unique_ptr<TernaryKernel> CreateConvDequantAvx2(const OpParams& p, const TernaryWeights& w,
                                                     NumericMode mode) {
  if (p.kind != OpKind::kConv2D) return nullptr;
  return std::unique_ptr<TernaryKernel>(new ConvKernel<MicroAvx2>(
      p, w, mode, mode == NumericMode::kExact ? "avx2_conv_f32" : "avx2_conv_int8dq"));
}

std::unique_ptr<TernaryKernel> CreateConvAvx2(const OpParams& p, const TernaryWeights& w,
                                              NumericMode mode) {
  // Fast mode uses the float GEMM on dequantized activations: on AVX2 (no VNNI) two int8
  // vpmaddubsw per 4 taps (P and N planes) measured 2x slower than FMA on Zen 3, see
  // BENCHMARKS.md. The int8 kernel stays available (and tested) as CreateConvInt8Avx2.
  if (WinogradEligible(p) && !WinogradDisabled()) {
    return std::unique_ptr<TernaryKernel>(new WinogradKernel<MicroAvx2>(
        p, w, mode,
        mode == NumericMode::kExact ? "avx2_conv_winograd_f32" : "avx2_conv_winograd_int8dq"));
  }
  return CreateConvDequantAvx2(p, w, mode);
}

std::unique_ptr<TernaryKernel> CreateConvWinogradAvx2(const OpParams& p, const TernaryWeights& w,
                                                      NumericMode mode) {
  if (!WinogradEligible(p)) return nullptr;
  return std::unique_ptr<TernaryKernel>(
      new WinogradKernel<MicroAvx2>(p, w, mode, "avx2_conv_winograd"));
}

}  // namespace optimized
}  // namespace core
}  // namespace ttq
