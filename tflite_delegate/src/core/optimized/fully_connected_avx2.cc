// Fully connected kernels for AVX2 + FMA. Weights stay as P (trit +1) and N (trit -1) masks,
// 2 bits per weight (2.13 in exact mode), read once per row: batch-1 FC is bound by weight
// traffic, so this beats reading int8 or float weights.
//   exact:    per group of 3 taps an 8-float table holds the sums of x over every subset of
//             the 3 taps; each output's dword holds ten 3-bit subset masks per plane
//             (PackTripletPlanes), so vpermps looks up 3 taps for 8 outputs at once and a
//             float add accumulates ΣP (or ΣN) in the output's lane: 3 instructions per
//             24 weights and plane, no horizontal sums.
//   fast int8: activations quantized per row (the reference's rule), offset to
//             u = q + 128 = 16·hi + lo. Per group of 4 taps two 16-entry tables hold the sums
//             of lo and of hi over every subset of the 4 taps. Weights are nibble masks for
//             32 output channels per 32-byte vector (PackNibblePlanes), so one vpshufb looks up
//             the subset sums of 4 taps for 32 outputs at once: ~0.1 instruction per weight
//             instead of ~0.25 for bit expansion + vpmaddubsw. u8 sums are widened every 16
//             taps (L + 16·H via vpmaddubsw), int16 every 256 taps, then
//             ΣP q = ΣP u − 128·|P| and y = scale·(s⁺ΣP − s⁻ΣN) + b as in the reference.
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

class FullyConnectedAvx2 final : public TernaryKernel {
 public:
  FullyConnectedAvx2(const OpParams& p, const TernaryWeights& w, NumericMode mode)
      : in_(p.in_channels), out_(p.out_channels), act_(p.activation), mode_(mode) {
    if (mode == NumericMode::kExact) {
      PackTripletPlanes(w.trits, out_, in_, &planes_);
    } else {
      PackNibblePlanes(w.trits, out_, in_, &planes_, &counts_);
    }
    PackChannelVector(w.pos_scales, out_, 32, &pos_);
    PackChannelVector(w.neg_scales, out_, 32, &neg_);
    PackChannelVector(w.bias, out_, 32, &bias_);
  }

  void RunConv(const ConvShape&, const float*, float*, ThreadPool*) override {}

  void RunFullyConnected(int rows, const float* input, float* output, ThreadPool* pool) override {
    if (rows <= 0) return;
    if (mode_ == NumericMode::kExact) {
      const int words = (in_ + 29) / 30;
      const int groups = words * 10;
      scratch_.Reserve(sizeof(float) * static_cast<size_t>(groups) * 8 + sizeof(float) * 32);
      float* tables = scratch_.as<float>();
      const int tiles = (out_ + 7) / 8;
      for (int r = 0; r < rows; ++r) {
        BuildFloatTables(input + static_cast<int64_t>(r) * in_, in_, groups, tables);
        float* y = output + static_cast<int64_t>(r) * out_;
        ParallelFor(pool, (tiles + 1) / 2, [&](int begin, int end) {
          for (int t = 2 * begin; t < 2 * end && t < tiles; t += 2) {
            if (t + 1 < tiles) {
              ExactTiles<2>(tables, words, t, y);
            } else {
              ExactTiles<1>(tables, words, t, y);
            }
          }
        });
      }
    } else {
      RunNibbleRows(rows, input, in_, out_, output, &scratch_, pool,
                    [this](const uint8_t* tables, int kp16, float scale, int t0, int t1, float* y) {
                      FastTiles(tables, kp16, scale, t0, t1, y);
                    });
    }
  }

  const char* Name() const override {
    return mode_ == NumericMode::kExact ? "avx2_fc_triplet_lut_f32" : "avx2_fc_nibble_lut_int8";
  }

 private:
  // tables[8·g + m] = sum of x[3g + i] over the bits i of m (x zero beyond n).
  static void BuildFloatTables(const float* x, int n, int groups, float* tables) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256 member[3];
    for (int i = 0; i < 3; ++i) {
      const __m256i bit = _mm256_set1_epi32(1 << i);
      member[i] = _mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(lane, bit), bit));
    }
    const int full = n / 3;
    for (int g = 0; g < groups; ++g) {
      float v[3];
      if (g < full) {
        v[0] = x[3 * g];
        v[1] = x[3 * g + 1];
        v[2] = x[3 * g + 2];
      } else {
        for (int i = 0; i < 3; ++i) v[i] = 3 * g + i < n ? x[3 * g + i] : 0.0f;
      }
      const __m256 t = _mm256_add_ps(_mm256_add_ps(_mm256_and_ps(_mm256_set1_ps(v[0]), member[0]),
                                                   _mm256_and_ps(_mm256_set1_ps(v[1]), member[1])),
                                     _mm256_and_ps(_mm256_set1_ps(v[2]), member[2]));
      _mm256_store_ps(tables + 8 * g, t);
    }
  }

  // NT (1 or 2) tiles of 8 output channels starting at tile t.
  template <int NT>
  void ExactTiles(const float* tables, int words, int t, float* y) const {
    const uint8_t* planes = planes_.as<uint8_t>();
    __m256 ap[NT], an[NT];
    const uint8_t* w[NT];
#pragma GCC unroll 16
    for (int i = 0; i < NT; ++i) {
      ap[i] = an[i] = _mm256_setzero_ps();
      w[i] = planes + static_cast<size_t>(t + i) * words * 64;
    }
    for (int word = 0; word < words; ++word) {
      __m256i P[NT], N[NT];
#pragma GCC unroll 16
      for (int i = 0; i < NT; ++i) {
        P[i] = _mm256_load_si256(reinterpret_cast<const __m256i*>(w[i] + word * 64));
        N[i] = _mm256_load_si256(reinterpret_cast<const __m256i*>(w[i] + word * 64 + 32));
      }
      const float* tb = tables + static_cast<size_t>(word) * 80;
#pragma GCC unroll 10
      for (int j = 0; j < 10; ++j) {
        const __m256 table = _mm256_load_ps(tb + 8 * j);
#pragma GCC unroll 16
        for (int i = 0; i < NT; ++i) {
          ap[i] = _mm256_add_ps(ap[i], _mm256_permutevar8x32_ps(table, P[i]));
          an[i] = _mm256_add_ps(an[i], _mm256_permutevar8x32_ps(table, N[i]));
          P[i] = _mm256_srli_epi32(P[i], 3);
          N[i] = _mm256_srli_epi32(N[i], 3);
        }
      }
    }
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
#pragma GCC unroll 16
    for (int i = 0; i < NT; ++i) {
      const int c = (t + i) * 8;
      const __m256 sp = _mm256_load_ps(pos_.as<float>() + c);
      const __m256 sn = _mm256_load_ps(neg_.as<float>() + c);
      const __m256 b = _mm256_load_ps(bias_.as<float>() + c);
      const __m256 v = ActivateAvx2(
          act_,
          _mm256_add_ps(_mm256_sub_ps(_mm256_mul_ps(sp, ap[i]), _mm256_mul_ps(sn, an[i])), b));
      const int valid = out_ - c < 8 ? out_ - c : 8;
      if (valid == 8) {
        _mm256_storeu_ps(y + c, v);
      } else {
        _mm256_maskstore_ps(y + c, _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), lane), v);
      }
    }
  }

  void FastTiles(const uint8_t* tables, int kp16, float scale, int t0, int t1, float* y) const {
    const int pairs = kp16 / 8, chunks = kp16 / 16;
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    const __m256i weights_1_16 = _mm256_set1_epi16(16 << 8 | 1);  // bytes (1, 16): L + 16·H
    const int32_t* counts = counts_.as<int32_t>();
    for (int tile = t0; tile < t1; ++tile) {
      const uint8_t* w = planes_.as<uint8_t>() + static_cast<size_t>(tile) * pairs * 64;
      alignas(32) int32_t acc[64];  // [P: outputs 0..31][N: outputs 0..31]
      for (auto& a : acc) a = 0;
      for (int c0 = 0; c0 < chunks; c0 += 16) {
        // int16 lanes (read as unsigned): at most 16 chunks · 4080 = 65280.
        const int c1 = c0 + 16 < chunks ? c0 + 16 : chunks;
        __m256i wpa = _mm256_setzero_si256(), wpb = _mm256_setzero_si256();
        __m256i wna = _mm256_setzero_si256(), wnb = _mm256_setzero_si256();
        for (int chunk = c0; chunk < c1; ++chunk) {
          // u8 lanes: 4 lookups of at most 4·15 = 60 each.
          __m256i lp = _mm256_setzero_si256(), hp = _mm256_setzero_si256();
          __m256i ln = _mm256_setzero_si256(), hn = _mm256_setzero_si256();
          for (int pp = 0; pp < 2; ++pp) {
            const int pair = 2 * chunk + pp;
            LookupPair(w + static_cast<size_t>(pair) * 64, tables + static_cast<size_t>(pair) * 64,
                       low4, lp, hp, ln, hn);
          }
          // (L, H) byte pairs per output -> L + 16·H in int16. unpacklo: outputs 0..7 and
          // 16..23; unpackhi: 8..15 and 24..31.
          wpa = _mm256_add_epi16(wpa,
                                 _mm256_maddubs_epi16(_mm256_unpacklo_epi8(lp, hp), weights_1_16));
          wpb = _mm256_add_epi16(wpb,
                                 _mm256_maddubs_epi16(_mm256_unpackhi_epi8(lp, hp), weights_1_16));
          wna = _mm256_add_epi16(wna,
                                 _mm256_maddubs_epi16(_mm256_unpacklo_epi8(ln, hn), weights_1_16));
          wnb = _mm256_add_epi16(wnb,
                                 _mm256_maddubs_epi16(_mm256_unpackhi_epi8(ln, hn), weights_1_16));
        }
        Flush(wpa, wpb, acc);
        Flush(wna, wnb, acc + 32);
      }
      const int c_begin = tile * 32;
      const int valid = out_ - c_begin < 32 ? out_ - c_begin : 32;
      const float* sp = pos_.as<float>() + c_begin;
      const float* sn = neg_.as<float>() + c_begin;
      const float* bias = bias_.as<float>() + c_begin;
      for (int o = 0; o < valid; ++o) {
        const int c = c_begin + o;
        const float sum_p = static_cast<float>(acc[o] - 128 * counts[2 * c]);
        const float sum_n = static_cast<float>(acc[32 + o] - 128 * counts[2 * c + 1]);
        y[c] = ActivateScalar(act_, scale * (sp[o] * sum_p - sn[o] * sum_n) + bias[o]);
      }
    }
  }

  // One pair: 8 taps x 32 outputs x 2 planes (w: P then N, 32 bytes each; tb: the lo/hi
  // tables of groups 2·pair and 2·pair + 1). Written in asm with a fixed order: from
  // intrinsics GCC 12 regrouped the 16 lookups of a chunk into a tree and spilled 10 of them
  // (97 instructions per 512 weights). 28 instructions per 256 weights: 2 weight loads,
  //   2 shifts, 4 masks, 4 table broadcasts, 8 vpshufb, 8 vpaddb.
  static inline __attribute__((always_inline)) void LookupPair(const uint8_t* w, const uint8_t* tb,
                                                               __m256i low4, __m256i& lp,
                                                               __m256i& hp, __m256i& ln,
                                                               __m256i& hn) {
    __m256i P, N, P1, N1, T, X;
    asm("vmovdqa (%[w]), %[P]\n\t"
        "vmovdqa 32(%[w]), %[N]\n\t"
        "vpsrlw $4, %[P], %[P1]\n\t"
        "vpsrlw $4, %[N], %[N1]\n\t"
        "vpand %[m], %[P], %[P]\n\t"
        "vpand %[m], %[N], %[N]\n\t"
        "vpand %[m], %[P1], %[P1]\n\t"
        "vpand %[m], %[N1], %[N1]\n\t"
        "vbroadcasti128 (%[t]), %[T]\n\t"  // lo nibbles, group 2·pair
        "vpshufb %[P], %[T], %[X]\n\t"
        "vpaddb %[X], %[lp], %[lp]\n\t"
        "vpshufb %[N], %[T], %[X]\n\t"
        "vpaddb %[X], %[ln], %[ln]\n\t"
        "vbroadcasti128 16(%[t]), %[T]\n\t"  // hi nibbles, group 2·pair
        "vpshufb %[P], %[T], %[X]\n\t"
        "vpaddb %[X], %[hp], %[hp]\n\t"
        "vpshufb %[N], %[T], %[X]\n\t"
        "vpaddb %[X], %[hn], %[hn]\n\t"
        "vbroadcasti128 32(%[t]), %[T]\n\t"  // lo nibbles, group 2·pair + 1
        "vpshufb %[P1], %[T], %[X]\n\t"
        "vpaddb %[X], %[lp], %[lp]\n\t"
        "vpshufb %[N1], %[T], %[X]\n\t"
        "vpaddb %[X], %[ln], %[ln]\n\t"
        "vbroadcasti128 48(%[t]), %[T]\n\t"  // hi nibbles, group 2·pair + 1
        "vpshufb %[P1], %[T], %[X]\n\t"
        "vpaddb %[X], %[hp], %[hp]\n\t"
        "vpshufb %[N1], %[T], %[X]\n\t"
        "vpaddb %[X], %[hn], %[hn]\n\t"
        : [lp] "+x"(lp), [hp] "+x"(hp), [ln] "+x"(ln), [hn] "+x"(hn), [P] "=&x"(P), [N] "=&x"(N),
          [P1] "=&x"(P1), [N1] "=&x"(N1), [T] "=&x"(T), [X] "=&x"(X)
        : [w] "r"(w), [t] "r"(tb), [m] "x"(low4), "m"(*reinterpret_cast<const uint8_t(*)[64]>(w)),
          "m"(*reinterpret_cast<const uint8_t(*)[64]>(tb)));
  }

  // Adds unsigned int16 sums to the int32 accumulators of 32 outputs. a: outputs 0..7 (lane 0)
  // and 16..23 (lane 1); b: 8..15 and 24..31.
  static void Flush(__m256i a, __m256i b, int32_t* acc) {
    auto add = [&](int at, __m128i v) {
      __m256i* p = reinterpret_cast<__m256i*>(acc + at);
      _mm256_store_si256(p, _mm256_add_epi32(_mm256_load_si256(p), _mm256_cvtepu16_epi32(v)));
    };
    add(0, _mm256_castsi256_si128(a));
    add(16, _mm256_extracti128_si256(a, 1));
    add(8, _mm256_castsi256_si128(b));
    add(24, _mm256_extracti128_si256(b, 1));
  }

  const int in_, out_;
  const Activation act_;
  const NumericMode mode_;
  AlignedBuffer planes_, pos_, neg_, bias_, counts_;
  AlignedBuffer scratch_;
};

}  // namespace

std::unique_ptr<TernaryKernel> CreateFullyConnectedAvx2(const OpParams& p, const TernaryWeights& w,
                                                        NumericMode mode) {
  if (p.kind != OpKind::kFullyConnected || p.in_channels < 1 || p.out_channels < 1) return nullptr;
  return std::unique_ptr<TernaryKernel>(new FullyConnectedAvx2(p, w, mode));
}

}  // namespace optimized
}  // namespace core
}  // namespace ttq
