// Internal interface of the aarch64 NEON kernel families (Isa::kNeon, Isa::kNeonDotprod).
//
// The kernel classes live in the baseline translation units (*_neon.cc, ARMv8.0): weight
// packing, threading (ThreadPool), quantization and the final float expression. Their int8
// inner loops come in two versions with one signature (neon_dotprod.h): the plain-NEON one in
// the *_neon.cc file and the SDOT one in the *_neon_dotprod.cc file, which is the only code
// compiled with -march=armv8.2-a+dotprod and is called only when HWCAP_ASIMDDP is set.
#ifndef TTQ_DELEGATE_CORE_OPTIMIZED_NEON_INTERNAL_H_
#define TTQ_DELEGATE_CORE_OPTIMIZED_NEON_INTERNAL_H_

#include <memory>

#include "core/kernel.h"

namespace ttq {
namespace core {
namespace optimized {

// The kernel of the NEON family for this op (`dotprod`: the SDOT family). Both families share
// the exact-mode (float) kernels and the depthwise kernel; they differ in the fast-mode
// (int8) conv and fully connected inner loops. Never nullptr for the three TTQ ops.
std::unique_ptr<TernaryKernel> CreateNeonKernel(const OpParams& p, const TernaryWeights& w,
                                                NumericMode mode, bool dotprod);

std::unique_ptr<TernaryKernel> CreateFullyConnectedNeon(const OpParams& p, const TernaryWeights& w,
                                                        NumericMode mode, bool dotprod);
std::unique_ptr<TernaryKernel> CreateConvNeon(const OpParams& p, const TernaryWeights& w,
                                              NumericMode mode, bool dotprod);
std::unique_ptr<TernaryKernel> CreateDepthwiseNeon(const OpParams& p, const TernaryWeights& w,
                                                   NumericMode mode);

}  // namespace optimized
}  // namespace core
}  // namespace ttq

#endif  // TTQ_DELEGATE_CORE_OPTIMIZED_NEON_INTERNAL_H_
