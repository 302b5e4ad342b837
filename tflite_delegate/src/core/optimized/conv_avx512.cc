// Conv2D for AVX-512 (kernel_layout.md §4): the padded direct kernels of
// conv_padded_avx512.inc (exact: float FMAs; fast with VNNI: w8a8, one vpdpbusd per 4 taps and
// 16 channels); Winograd F(2x2, 3x3) (winograd_impl.inc) for 3x3 stride-1 convs with >= 64
// channels; the indirect GEMM of conv_impl.inc (12 x 16 register tile) for the pixel strides the
// padded kernels lack; the two-plane int8 kernel of conv_int8_impl.inc for rows too long for
// w8a8.
// kernels_test.cc runs every kernel here on AVX-512 CPUs (and skips them elsewhere).
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
#include "core/optimized/conv_padded_avx512.inc"
#include "core/optimized/winograd_impl.inc"
// clang-format on

struct MicroAvx512 {
  static constexpr int kMR = 12;

  template <int MR>
  static void Tile(const TileArgs& a) {
    __m512 acc[MR];
    const __m512 b = _mm512_load_ps(a.bias);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) acc[r] = b;
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
        const __m512 wv = _mm512_load_ps(w);
        w += kNR;
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r) {
          acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(x[r][ci]), wv, acc[r]);
        }
      }
    }
    const __mmask16 store_mask = static_cast<__mmask16>((1u << a.valid) - 1u);
    const __m512 zero = _mm512_setzero_ps(), six = _mm512_set1_ps(6.0f);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      __m512 y = acc[r];
      if (a.act != Activation::kNone) y = _mm512_max_ps(y, zero);
      if (a.act == Activation::kRelu6) y = _mm512_min_ps(y, six);
      _mm512_mask_storeu_ps(a.out + static_cast<int64_t>(r) * a.out_stride, store_mask, y);
    }
  }
};

// Int8 tile for AVX-512 VNNI: 12 pixels x 16 output channels (24 of the 32 zmm accumulate;
// measured 10% faster on the ResNet-20 convs than 6 pixels) x 2 planes, vpdpbusd(u, 0/1)
// accumulates Σ u straight into int32 (one instruction per 4 taps, 16 channels and plane).
struct MicroI8Vnni {
  static constexpr int kMR = 12;
  static constexpr int kNR = 16;

  template <int MR>
  static void Tile(const I8Args& a) {
    __m512i p32[MR], n32[MR];
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) p32[r] = n32[r] = _mm512_setzero_si512();
    const uint8_t* w = a.weights;
    for (int t = 0; t < a.taps; ++t) {
      const uint8_t* x[MR];
      SelectRows<MR>(a, t, x);
      for (int s = 0; s < a.steps; ++s) {
        const __m512i wp = _mm512_load_si512(w);
        const __m512i wn = _mm512_load_si512(w + 64);
        w += 128;
#pragma GCC unroll 16
        for (int r = 0; r < MR; ++r) {
          const __m512i u = _mm512_set1_epi32(Load4(x[r] + 4 * s));
          p32[r] = _mm512_dpbusd_epi32(p32[r], u, wp);
          n32[r] = _mm512_dpbusd_epi32(n32[r], u, wn);
        }
      }
    }
    const __m512i c128p = _mm512_slli_epi32(_mm512_loadu_si512(a.count_p), 7);
    const __m512i c128n = _mm512_slli_epi32(_mm512_loadu_si512(a.count_n), 7);
    const __m512 sp = _mm512_loadu_ps(a.pos), sn = _mm512_loadu_ps(a.neg);
    const __m512 b = _mm512_loadu_ps(a.bias), scale = _mm512_set1_ps(a.scale);
    const __m512 zero = _mm512_setzero_ps(), six = _mm512_set1_ps(6.0f);
    const __mmask16 store_mask = static_cast<__mmask16>((1u << a.valid) - 1u);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const __m512 fp = _mm512_cvtepi32_ps(_mm512_sub_epi32(p32[r], c128p));
      const __m512 fn = _mm512_cvtepi32_ps(_mm512_sub_epi32(n32[r], c128n));
      __m512 y = _mm512_add_ps(
          _mm512_mul_ps(scale, _mm512_sub_ps(_mm512_mul_ps(sp, fp), _mm512_mul_ps(sn, fn))), b);
      if (a.act != Activation::kNone) y = _mm512_max_ps(y, zero);
      if (a.act == Activation::kRelu6) y = _mm512_min_ps(y, six);
      _mm512_mask_storeu_ps(a.out + static_cast<int64_t>(r) * a.out_stride, store_mask, y);
    }
  }
};

bool W8A8Eligible(const OpParams& p) {
  return PaddedExtentOk(p) && static_cast<int64_t>(p.kernel_height) * p.kernel_width *
                                      ((static_cast<int64_t>(p.in_channels) + 3) / 4 * 4) <=
                                  kMaxLevelRowLength;
}

}  // namespace

std::unique_ptr<TernaryKernel> CreateConvInt8TwoPlaneAvx512(const OpParams& p,
                                                            const TernaryWeights& w) {
  if (p.kind != OpKind::kConv2D || !GetCpuFeatures().avx512vnni) return nullptr;
  return std::unique_ptr<TernaryKernel>(
      new ConvInt8Kernel<MicroI8Vnni>(p, w, "avx512_conv_vnni_int8"));
}

std::unique_ptr<TernaryKernel> CreateConvPaddedF32Avx512(const OpParams& p,
                                                         const TernaryWeights& w) {
  if (p.kind != OpKind::kConv2D || PaddedF32Channels(p) == 0) return nullptr;
  // 16-channel blocks where a 32-channel block would be mostly padding.
  if (p.out_channels <= 16) return std::unique_ptr<TernaryKernel>(new ConvF32PaddedKernel<1>(p, w));
  return std::unique_ptr<TernaryKernel>(new ConvF32PaddedKernel<2>(p, w));
}

std::unique_ptr<TernaryKernel> CreateConvAvx512(const OpParams& p, const TernaryWeights& w,
                                                NumericMode mode) {
  if (p.kind != OpKind::kConv2D) return nullptr;
  if (mode == NumericMode::kFastInt8 && GetCpuFeatures().avx512vnni && !ConvDequantRequested()) {
    if (!W8A8Eligible(p)) return CreateConvInt8TwoPlaneAvx512(p, w);
    // 16-channel blocks where a 32-channel block would be mostly padding.
    if (p.out_channels <= 16) return std::unique_ptr<TernaryKernel>(new ConvW8A8Kernel<1>(p, w));
    return std::unique_ptr<TernaryKernel>(new ConvW8A8Kernel<2>(p, w));
  }
  // Winograd F(2x2, 3x3) saves 2.25x the multiplies but its transforms cost per tile in
  // proportion to C_in + C_out: on AVX-512 it beat the padded direct kernel only at 64
  // channels (ResNet-20's 8x8 stage), not at 16 or 32 (BENCHMARKS.md).
  const bool winograd_pays = mode != NumericMode::kExact ||
                             Min(p.in_channels, p.out_channels) >= 64 || PaddedF32Channels(p) == 0;
  if (WinogradEligible(p) && !WinogradDisabled() && winograd_pays) {
    return std::unique_ptr<TernaryKernel>(new WinogradKernel<MicroAvx512>(
        p, w, mode,
        mode == NumericMode::kExact ? "avx512_conv_winograd_f32" : "avx512_conv_winograd_int8dq"));
  }
  if (mode == NumericMode::kExact) {
    if (auto padded = CreateConvPaddedF32Avx512(p, w)) return padded;
  }
  return std::unique_ptr<TernaryKernel>(new ConvKernel<MicroAvx512>(
      p, w, mode, mode == NumericMode::kExact ? "avx512_conv_f32" : "avx512_conv_int8dq"));
}

}  // namespace optimized
}  // namespace core
}  // namespace ttq
