// Fully connected kernels for AVX-512 (F/BW/VL/DQ, VNNI when present). Bit planes in natural
// order (tap t of a 256-tap block is bit t % 8 of byte t / 8), read straight into mask
// registers:
//   exact:     per 16 taps and plane, acc = mask_add(acc, k, acc, x) — float ΣP and ΣN;
//   fast int8: per 64 taps and plane, maskz_mov(k, 1) expands the bits to 0/1 bytes, then
//              vpdpbusd (VNNI) or vpmaddubsw + int16 adds sum the int8 activations under them.
// NOTE: this machine family was not available to the author's test runs (AMD Zen 3, AVX2 only);
// kernels_test.cc covers it automatically on AVX-512 CPUs.
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

constexpr int kBlock = 256;

inline int32_t ReduceAdd(__m512i v) { return _mm512_reduce_add_epi32(v); }
inline float ReduceAdd(__m512 v) { return _mm512_reduce_add_ps(v); }

class FullyConnectedAvx512 final : public TernaryKernel {
 public:
  FullyConnectedAvx512(const OpParams& p, const TernaryWeights& w, NumericMode mode, bool vnni)
      : in_(p.in_channels),
        out_(p.out_channels),
        blocks_((p.in_channels + kBlock - 1) / kBlock),
        act_(p.activation),
        mode_(mode),
        vnni_(vnni) {
    PackBitPlanes(w.trits, out_, in_, &planes_);
    PackChannelVector(w.pos_scales, out_, 16, &pos_);
    PackChannelVector(w.neg_scales, out_, 16, &neg_);
    PackChannelVector(w.bias, out_, 16, &bias_);
  }

  void RunConv(const ConvShape&, const float*, float*, ThreadPool*) override {}

  void RunFullyConnected(int rows, const float* input, float* output, ThreadPool* pool) override {
    if (rows <= 0) return;
    const int kp = blocks_ * kBlock;
    if (mode_ == NumericMode::kExact) {
      const float* x = input;
      int64_t stride = in_;
      if (kp != in_) {
        scratch_.Reserve(sizeof(float) * static_cast<size_t>(rows) * kp);
        float* padded = scratch_.as<float>();
        for (int r = 0; r < rows; ++r) {
          std::memcpy(padded + static_cast<int64_t>(r) * kp, input + static_cast<int64_t>(r) * in_,
                      sizeof(float) * in_);
          std::memset(padded + static_cast<int64_t>(r) * kp + in_, 0, sizeof(float) * (kp - in_));
        }
        x = padded;
        stride = kp;
      }
      ParallelFor(pool, out_, [&](int begin, int end) {
        for (int r = 0; r < rows; r += 2) {
          const int nr = rows - r >= 2 ? 2 : 1;
          ExactRows(x + r * stride, stride, nr, begin, end,
                    output + static_cast<int64_t>(r) * out_);
        }
      });
    } else {
      scratch_.Reserve(static_cast<size_t>(rows) * kp + sizeof(float) * rows);
      int8_t* q = scratch_.as<int8_t>();
      float* scales = reinterpret_cast<float*>(q + static_cast<size_t>(rows) * kp);
      for (int r = 0; r < rows; ++r) {
        int8_t* qr = q + static_cast<int64_t>(r) * kp;
        scales[r] = QuantizeAvx2(input + static_cast<int64_t>(r) * in_, in_, qr);
        std::memset(qr + in_, 0, kp - in_);
      }
      ParallelFor(pool, out_, [&](int begin, int end) {
        for (int r = 0; r < rows; r += 2) {
          const int nr = rows - r >= 2 ? 2 : 1;
          if (vnni_) {
            FastRowsVnni(q + static_cast<int64_t>(r) * kp, kp, scales + r, nr, begin, end,
                         output + static_cast<int64_t>(r) * out_);
          } else {
            FastRowsBw(q + static_cast<int64_t>(r) * kp, kp, scales + r, nr, begin, end,
                       output + static_cast<int64_t>(r) * out_);
          }
        }
      });
    }
  }

  const char* Name() const override {
    return mode_ == NumericMode::kExact
               ? "avx512_fc_bitplane_f32"
               : (vnni_ ? "avx512_fc_bitplane_vnni" : "avx512_fc_bitplane_int8");
  }

 private:
  void Finish(int c, int nr, const float* sum_p, const float* sum_n, const float* scales,
              float* y) const {
    const float sp = pos_.as<float>()[c], sn = neg_.as<float>()[c], bias = bias_.as<float>()[c];
#pragma GCC unroll 16
    for (int r = 0; r < nr; ++r) {
      const float s = scales ? scales[r] : 1.0f;
      const float v = scales ? s * (sp * sum_p[r] - sn * sum_n[r]) + bias
                             : sp * sum_p[r] - sn * sum_n[r] + bias;
      y[static_cast<int64_t>(r) * out_ + c] = ActivateScalar(act_, v);
    }
  }

  void ExactRows(const float* x, int64_t stride, int nr, int c0, int c1, float* y) const {
    const uint8_t* planes = planes_.as<uint8_t>();
    for (int c = c0; c < c1; ++c) {
      const uint8_t* w = planes + static_cast<int64_t>(c) * blocks_ * 64;
      __m512 p0[2], p1[2], n0[2], n1[2];
#pragma GCC unroll 16
      for (int r = 0; r < 2; ++r) {
        p0[r] = p1[r] = n0[r] = n1[r] = _mm512_setzero_ps();
      }
      for (int b = 0; b < blocks_; ++b) {
        const uint16_t* P = reinterpret_cast<const uint16_t*>(w + b * 64);
        const uint16_t* N = reinterpret_cast<const uint16_t*>(w + b * 64 + 32);
        const float* xb = x + b * kBlock;
#pragma GCC unroll 8
        for (int j = 0; j < 16; j += 2) {
          const __mmask16 kp0 = P[j], kp1 = P[j + 1], kn0 = N[j], kn1 = N[j + 1];
#pragma GCC unroll 16
          for (int r = 0; r < nr; ++r) {
            const __m512 xa = _mm512_loadu_ps(xb + r * stride + 16 * j);
            const __m512 xc = _mm512_loadu_ps(xb + r * stride + 16 * j + 16);
            p0[r] = _mm512_mask_add_ps(p0[r], kp0, p0[r], xa);
            n0[r] = _mm512_mask_add_ps(n0[r], kn0, n0[r], xa);
            p1[r] = _mm512_mask_add_ps(p1[r], kp1, p1[r], xc);
            n1[r] = _mm512_mask_add_ps(n1[r], kn1, n1[r], xc);
          }
        }
      }
      float sp[2], sn[2];
#pragma GCC unroll 16
      for (int r = 0; r < nr; ++r) {
        sp[r] = ReduceAdd(_mm512_add_ps(p0[r], p1[r]));
        sn[r] = ReduceAdd(_mm512_add_ps(n0[r], n1[r]));
      }
      Finish(c, nr, sp, sn, nullptr, y);
    }
  }

  void FastRowsVnni(const int8_t* q, int64_t stride, const float* scales, int nr, int c0, int c1,
                    float* y) const {
    const uint8_t* planes = planes_.as<uint8_t>();
    const __m512i ones8 = _mm512_set1_epi8(1);
    for (int c = c0; c < c1; ++c) {
      const uint8_t* w = planes + static_cast<int64_t>(c) * blocks_ * 64;
      __m512i p32[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
      __m512i n32[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
      for (int b = 0; b < blocks_; ++b) {
        const uint64_t* P = reinterpret_cast<const uint64_t*>(w + b * 64);
        const uint64_t* N = reinterpret_cast<const uint64_t*>(w + b * 64 + 32);
        const int8_t* qb = q + b * kBlock;
#pragma GCC unroll 4
        for (int j = 0; j < 4; ++j) {
          const __m512i mp = _mm512_maskz_mov_epi8(static_cast<__mmask64>(P[j]), ones8);
          const __m512i mn = _mm512_maskz_mov_epi8(static_cast<__mmask64>(N[j]), ones8);
#pragma GCC unroll 16
          for (int r = 0; r < nr; ++r) {
            const __m512i qv = _mm512_loadu_si512(qb + r * stride + 64 * j);
            p32[r] = _mm512_dpbusd_epi32(p32[r], mp, qv);
            n32[r] = _mm512_dpbusd_epi32(n32[r], mn, qv);
          }
        }
      }
      float sp[2], sn[2];
#pragma GCC unroll 16
      for (int r = 0; r < nr; ++r) {
        sp[r] = static_cast<float>(ReduceAdd(p32[r]));
        sn[r] = static_cast<float>(ReduceAdd(n32[r]));
      }
      Finish(c, nr, sp, sn, scales, y);
    }
  }

  void FastRowsBw(const int8_t* q, int64_t stride, const float* scales, int nr, int c0, int c1,
                  float* y) const {
    const uint8_t* planes = planes_.as<uint8_t>();
    const __m512i ones8 = _mm512_set1_epi8(1);
    const __m512i ones16 = _mm512_set1_epi16(1);
    for (int c = c0; c < c1; ++c) {
      const uint8_t* w = planes + static_cast<int64_t>(c) * blocks_ * 64;
      __m512i p32[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
      __m512i n32[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
      for (int b0 = 0; b0 < blocks_; b0 += 16) {
        // int16 lanes: at most 16 blocks * 4 * (two products |q| <= 127) = 16256.
        const int b1 = b0 + 16 < blocks_ ? b0 + 16 : blocks_;
        __m512i p16[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
        __m512i n16[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
        for (int b = b0; b < b1; ++b) {
          const uint64_t* P = reinterpret_cast<const uint64_t*>(w + b * 64);
          const uint64_t* N = reinterpret_cast<const uint64_t*>(w + b * 64 + 32);
          const int8_t* qb = q + b * kBlock;
#pragma GCC unroll 4
          for (int j = 0; j < 4; ++j) {
            const __m512i mp = _mm512_maskz_mov_epi8(static_cast<__mmask64>(P[j]), ones8);
            const __m512i mn = _mm512_maskz_mov_epi8(static_cast<__mmask64>(N[j]), ones8);
#pragma GCC unroll 16
            for (int r = 0; r < nr; ++r) {
              const __m512i qv = _mm512_loadu_si512(qb + r * stride + 64 * j);
              p16[r] = _mm512_add_epi16(p16[r], _mm512_maddubs_epi16(mp, qv));
              n16[r] = _mm512_add_epi16(n16[r], _mm512_maddubs_epi16(mn, qv));
            }
          }
        }
#pragma GCC unroll 16
        for (int r = 0; r < nr; ++r) {
          p32[r] = _mm512_add_epi32(p32[r], _mm512_madd_epi16(p16[r], ones16));
          n32[r] = _mm512_add_epi32(n32[r], _mm512_madd_epi16(n16[r], ones16));
        }
      }
      float sp[2], sn[2];
#pragma GCC unroll 16
      for (int r = 0; r < nr; ++r) {
        sp[r] = static_cast<float>(ReduceAdd(p32[r]));
        sn[r] = static_cast<float>(ReduceAdd(n32[r]));
      }
      Finish(c, nr, sp, sn, scales, y);
    }
  }

  const int in_, out_, blocks_;
  const Activation act_;
  const NumericMode mode_;
  const bool vnni_;
  AlignedBuffer planes_, pos_, neg_, bias_;
  AlignedBuffer scratch_;
};

}  // namespace

std::unique_ptr<TernaryKernel> CreateFullyConnectedAvx512(const OpParams& p,
                                                          const TernaryWeights& w,
                                                          NumericMode mode) {
  if (p.kind != OpKind::kFullyConnected || p.in_channels < 1 || p.out_channels < 1) return nullptr;
  return std::unique_ptr<TernaryKernel>(
      new FullyConnectedAvx512(p, w, mode, GetCpuFeatures().avx512vnni));
}

}  // namespace optimized
}  // namespace core
}  // namespace ttq
