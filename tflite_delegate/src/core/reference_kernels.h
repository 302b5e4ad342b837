// Reference kernels: plain loops that implement docs/format.md literally. They are the oracle
// for every test of the optimized kernels and the fallback on CPUs without one.
//
// Exact mode (NumericMode::kExact). For each output element
//     y = act( s⁺·Σ_{k∈P} x_k − s⁻·Σ_{k∈N} x_k + b )
// with the two sums accumulated in double and the result rounded once to float, so the
// reference is at least as accurate as any float implementation it checks.
//
// Fast mode (NumericMode::kFastInt8), the contract the optimized int8 kernels follow:
//   1. Quantize dynamically, symmetric, one scale per unit: a row of a fully connected input, a
//      whole image [H, W, C] of a conv or depthwise input.
//          m = max|x| over the unit;  scale = m / 127;  q = clamp(rint(x · (127 / m)), −127, 127)
//      rint rounds half to even (the default FP rounding, like SIMD cvtps2dq). m = 0 gives
//      scale = 0 and q = 0 everywhere. Padding taps read q = 0.
//   2. Accumulate ΣP = Σ_{k∈P} q_k and ΣN = Σ_{k∈N} q_k in int32 (|q| ≤ 127, so rows of up to
//      16.9M taps cannot overflow).
//   3. y = act( scale · (s⁺·ΣP − s⁻·ΣN) + b ), computed in float.
// The error against exact mode is at most scale/2 per tap times the row's |scale| sums.
// Exception: the w8a8 conv kernel on AVX-512 VNNI follows this contract with s⁺ and s⁻ snapped
// per output channel to the grid of max(|s⁺|, |s⁻|)/127 (docs/kernel_layout.md §4; its test
// oracle is this reference on the snapped scales).
#ifndef TTQ_DELEGATE_CORE_REFERENCE_KERNELS_H_
#define TTQ_DELEGATE_CORE_REFERENCE_KERNELS_H_

#include <cstdint>
#include <memory>

#include "core/kernel.h"

namespace ttq {
namespace core {

// The reference kernel for either numeric mode.
std::unique_ptr<TernaryKernel> CreateReferenceKernel(const OpParams& params,
                                                     const TernaryWeights& weights,
                                                     NumericMode mode);

// Quantizes n floats with one symmetric scale as described above; returns the scale.
float QuantizeSymmetricInt8(const float* x, int64_t n, int8_t* q);

// Applies an activation to one value.
inline float ApplyActivation(Activation activation, float y) {
  switch (activation) {
    case Activation::kNone:
      return y;
    case Activation::kRelu:
      return y > 0.0f ? y : 0.0f;
    case Activation::kRelu6:
      return y > 0.0f ? (y < 6.0f ? y : 6.0f) : 0.0f;
  }
  return y;
}

}  // namespace core
}  // namespace ttq

#endif  // TTQ_DELEGATE_CORE_REFERENCE_KERNELS_H_
