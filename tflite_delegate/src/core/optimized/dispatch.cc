// CreateKernel: picks the kernel family for this CPU at run time (cpuid), falling back to the
// reference kernel for anything without an optimized kernel. Compiled for the baseline ISA.
//
// Families: x86-64 AVX-512 (F/BW/VL/DQ, VNNI used when present) > AVX2+FMA > reference.
// aarch64: NEON with SDOT (HWCAP_ASIMDDP) > plain NEON > reference (*_neon.cc, neon_internal.h).
// Other builds compile only this file, pack.cc and cpu_features.cc.
#include <cstdio>
#include <cstdlib>

#include "core/kernel.h"
#include "core/optimized/cpu_features.h"
#include "core/optimized/internal.h"
#ifdef TTQ_HAVE_NEON_KERNELS
#include "core/optimized/neon_internal.h"
#endif
#include "core/reference_kernels.h"

#if (defined(__x86_64__) || defined(_M_X64)) && !defined(TTQ_NO_X86_KERNELS)
#define TTQ_HAVE_X86_KERNELS 1
#endif

namespace ttq {
namespace core {
namespace optimized {

std::unique_ptr<TernaryKernel> CreateKernelForIsa(const OpParams& params,
                                                  const TernaryWeights& weights, NumericMode mode,
                                                  Isa isa) {
  if (isa == Isa::kReference) return CreateReferenceKernel(params, weights, mode);
  if (!IsaSupported(isa)) return nullptr;
#ifdef TTQ_HAVE_X86_KERNELS
  if (isa == Isa::kAvx512) {
#ifdef TTQ_HAVE_AVX512_KERNELS
    switch (params.kind) {
      case OpKind::kFullyConnected:
        return CreateFullyConnectedAvx512(params, weights, mode);
      case OpKind::kConv2D:
        return CreateConvAvx512(params, weights, mode);
      case OpKind::kDepthwiseConv2D:
        // Depthwise ops are small; the AVX2 kernel serves the AVX-512 level too.
        return CreateDepthwiseAvx2(params, weights, mode);
    }
#endif
    return nullptr;
  }
  if (isa == Isa::kAvx2) {
    switch (params.kind) {
      case OpKind::kFullyConnected:
        return CreateFullyConnectedAvx2(params, weights, mode);
      case OpKind::kConv2D:
        return CreateConvAvx2(params, weights, mode);
      case OpKind::kDepthwiseConv2D:
        return CreateDepthwiseAvx2(params, weights, mode);
    }
  }
#endif
#ifdef TTQ_HAVE_NEON_KERNELS
  if (isa == Isa::kNeon || isa == Isa::kNeonDotprod) {
    return CreateNeonKernel(params, weights, mode, isa == Isa::kNeonDotprod);
  }
#endif
  return nullptr;
}

}  // namespace optimized

std::unique_ptr<TernaryKernel> CreateKernel(const OpParams& params, const TernaryWeights& weights,
                                            NumericMode mode) {
  using optimized::Isa;
  for (int level = static_cast<int>(optimized::BestIsa()); level > 0; --level) {
    std::unique_ptr<TernaryKernel> k =
        optimized::CreateKernelForIsa(params, weights, mode, static_cast<Isa>(level));
    if (k) return k;
  }
  return CreateReferenceKernel(params, weights, mode);
}

}  // namespace core
}  // namespace ttq
