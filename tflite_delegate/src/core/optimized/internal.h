// Internal interface of the optimized kernels: per-ISA factories, weight repacking and a
// tiny aligned buffer.
//
// ISA translation units (*_avx2.cc, *_avx512.cc) are compiled with per-file target flags.
// To keep those instructions from leaking into code that runs before dispatch (the linker keeps
// one copy of every inline/template function, possibly the AVX-512 one), they define
// everything in an anonymous namespace, instantiate no standard-library containers and use only
// AlignedBuffer (whose methods are out of line, in pack.cc) for memory.
#ifndef TTQ_DELEGATE_CORE_OPTIMIZED_INTERNAL_H_
#define TTQ_DELEGATE_CORE_OPTIMIZED_INTERNAL_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/kernel.h"
#include "core/optimized/cpu_features.h"

namespace ttq {
namespace core {
namespace optimized {

// 64-byte aligned, zero-initialized storage. Move-only.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  ~AlignedBuffer();
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  // Reallocates (zero-filled) unless the buffer already holds at least `bytes`; contents are
  // not preserved.
  void Reserve(size_t bytes);
  template <typename T>
  T* as() {
    return static_cast<T*>(data_);
  }
  template <typename T>
  const T* as() const {
    return static_cast<const T*>(data_);
  }
  size_t size() const { return size_; }

 private:
  void* data_ = nullptr;
  size_t size_ = 0;
};

inline int RoundUp(int x, int m) { return (x + m - 1) / m * m; }

// Float weights w = s⁺ (trit +1), −s⁻ (trit −1), 0, blocked by `nr` output channels:
// out[(c / nr) * K * nr + k * nr + c % nr], channels padded with zeros to a multiple of nr.
void PackBlockedFloatWeights(const TernaryWeights& w, int out_channels, int k, int nr,
                             AlignedBuffer* out);

// Per-channel vectors padded with zeros to a multiple of `pad`: s⁺, s⁻ and bias.
void PackChannelVector(const float* v, int n, int pad, AlignedBuffer* out);

// Indirection for conv and depthwise: for output pixel m = oh·out_w + ow of one image and tap
// t = kh·KW + kw, offsets[m·T + t] is the element offset (ih·in_w + iw)·in_c of the input pixel
// the tap reads, or −1 when it falls into the padding. Rebuilt only when the geometry changes.
struct ConvOffsets {
  void Update(const OpParams& p, const ConvShape& s);
  const int32_t* data() const { return buf.as<int32_t>(); }
  AlignedBuffer buf;
  bool valid = false;
  int in_h = 0, in_w = 0, out_h = 0, out_w = 0, pad_t = 0, pad_l = 0;
};

// Nibble planes for the AVX2, AVX-512 and NEON fast (int8) fully connected kernels, 2 bits per
// weight.
// Output channels in tiles of 32 (padded with zero trits), taps padded to a multiple of 16.
// Layout [tile][pair of 8 taps][plane P, N][32 bytes]: byte o holds the mask of output
// tile·32 + o for taps 8·pair + 0..3 (low nibble, bit i = tap 8·pair + i) and 8·pair + 4..7
// (high nibble). Also fills counts[2·c] = |P_c|, counts[2·c + 1] = |N_c|.
void PackNibblePlanes(const int8_t* trits, int out_channels, int k, AlignedBuffer* out,
                      AlignedBuffer* counts);

// Triplet planes for the AVX2 exact fully connected kernel (~2.13 bits per weight). Output
// channels in tiles of 8, taps in words of 30 (padded with zero trits). Layout
// [tile][word][plane P, N][8 dwords]: dword o holds, for output tile·8 + o, ten 3-bit subset
// masks; bits 3j..3j+2 select taps 30·word + 3j + 0..2.
void PackTripletPlanes(const int8_t* trits, int out_channels, int k, AlignedBuffer* out);

// Int8 conv weights for vpmaddubsw / vpdpbusd: input channels padded to cp = RoundUp(C_in, 4),
// output channels in blocks of nr. Layout [block][tap][cp / 4][plane P, N][nr][4]: 32-bit lane j
// of a plane vector holds the 0/1 bytes of output channel block·nr + j for 4 consecutive input
// channels. With C = C_out padded to a multiple of nr: counts[c] = |P_c|, counts[C + c] = |N_c|.
void PackConvInt8Weights(const int8_t* trits, int out_channels, int taps, int in_channels, int nr,
                         AlignedBuffer* out, AlignedBuffer* counts);

// Int8 weight levels for the w8a8 conv (fast mode on AVX-512 VNNI, kernel_layout.md §4): per
// output channel, m = max(|s⁺|, |s⁻|), the trit +1 becomes A = rint(127·s⁺/m) and −1 becomes
// −B = −rint(127·s⁻/m), with step m/127, so the weight is step·level (s⁺ and s⁻ rounded to
// the grid of m/127, error <= m/254). m = 0 (or non-finite) gives levels 0 and step 0.
void SnapScalesToInt8Levels(float pos, float neg, int* level_pos, int* level_neg,
                            float* level_step);
// The w8a8 rows must keep 255·127·K (and 128·127·K) inside int32.
constexpr int64_t kMaxLevelRowLength = 65536;
// Layout [block][tap][cp / 4][nr][4] of int8 levels (one plane: 32-bit lane j holds output
// channel block·nr + j for 4 consecutive input channels), input channels padded to
// cp = RoundUp(C_in, 4). corrections[c] = 128·Σ_k level_kc (the u = q + 128 offset),
// steps[c] = m_c / 127; both padded with zeros to a multiple of nr.
void PackConvLevelWeights(const TernaryWeights& w, int out_channels, int taps, int in_channels,
                          int nr, AlignedBuffer* out, AlignedBuffer* corrections,
                          AlignedBuffer* steps);
// Winograd F(2x2, 3x3) weights for a 3x3 conv: U = G·g·Gᵀ per (output, input channel), with
// g the float weights s⁺/−s⁻/0. Layout [16 positions][C_out/16 blocks][C_in][16] (the float
// GEMM micro-kernel's [K][16] layout per position and block), channels padded with zeros.
void PackWinogradWeights(const TernaryWeights& w, int out_channels, int in_channels,
                         AlignedBuffer* out);

// Factories of the ISA translation units. They return nullptr for an op they do not handle.
std::unique_ptr<TernaryKernel> CreateFullyConnectedAvx2(const OpParams& p, const TernaryWeights& w,
                                                        NumericMode mode);
std::unique_ptr<TernaryKernel> CreateConvAvx2(const OpParams& p, const TernaryWeights& w,
                                              NumericMode mode);
// Int8 (vpmaddubsw) conv for fast mode, bit-exact with the reference's fast mode. Not chosen by
// CreateConvAvx2 (slower than the float GEMM without VNNI); kept for tests and benchmarks.
std::unique_ptr<TernaryKernel> CreateConvInt8Avx2(const OpParams& p, const TernaryWeights& w);
// The float GEMM for both modes (fast mode: on the image quantized and dequantized).
std::unique_ptr<TernaryKernel> CreateConvDequantAvx2(const OpParams& p, const TernaryWeights& w,
                                                     NumericMode mode);
// TTQ_CONV_DEQUANT=1 in the environment makes the AVX-512 fast-mode conv use the float GEMM on
// dequantized activations instead of the VNNI int8 kernel (a benchmarking knob; both give the
// same results up to float rounding).
bool ConvDequantRequested();
// Winograd F(2x2, 3x3) conv (3x3, stride 1, dilation 1, C_in >= 8); nullptr otherwise. The
// default for those convs; TTQ_NO_WINOGRAD=1 in the environment disables it (benchmark knob).
std::unique_ptr<TernaryKernel> CreateConvWinogradAvx2(const OpParams& p, const TernaryWeights& w,
                                                      NumericMode mode);
bool WinogradDisabled();
std::unique_ptr<TernaryKernel> CreateDepthwiseAvx2(const OpParams& p, const TernaryWeights& w,
                                                   NumericMode mode);
std::unique_ptr<TernaryKernel> CreateFullyConnectedAvx512(const OpParams& p,
                                                          const TernaryWeights& w,
                                                          NumericMode mode);
// The padded direct float conv (conv_padded_avx512.inc) for exact mode, whether or not
// CreateConvAvx512 picks it; nullptr unless stride_w·C_in is one of its pixel strides.
std::unique_ptr<TernaryKernel> CreateConvPaddedF32Avx512(const OpParams& p,
                                                         const TernaryWeights& w);
// The two-plane VNNI int8 conv (bit-exact with the reference's fast mode, twice the vpdpbusd of
// the w8a8 kernel CreateConvAvx512 picks); nullptr without VNNI. Kept for tests and benchmarks.
std::unique_ptr<TernaryKernel> CreateConvInt8TwoPlaneAvx512(const OpParams& p,
                                                            const TernaryWeights& w);
std::unique_ptr<TernaryKernel> CreateConvAvx512(const OpParams& p, const TernaryWeights& w,
                                                NumericMode mode);

// Test and benchmark hook: the kernel of exactly this family, or nullptr when the CPU or the
// build does not support it. Isa::kReference gives the reference kernel.
std::unique_ptr<TernaryKernel> CreateKernelForIsa(const OpParams& params,
                                                  const TernaryWeights& weights, NumericMode mode,
                                                  Isa isa);

}  // namespace optimized
}  // namespace core
}  // namespace ttq

#endif  // TTQ_DELEGATE_CORE_OPTIMIZED_INTERNAL_H_
