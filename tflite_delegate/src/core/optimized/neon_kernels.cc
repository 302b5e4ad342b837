// CreateNeonKernel: the NEON family's kernel for one op (see neon_internal.h).
#include "core/optimized/neon_internal.h"

namespace ttq {
namespace core {
namespace optimized {

std::unique_ptr<TernaryKernel> CreateNeonKernel(const OpParams& p, const TernaryWeights& w,
                                                NumericMode mode, bool dotprod) {
  switch (p.kind) {
    case OpKind::kFullyConnected:
      return CreateFullyConnectedNeon(p, w, mode, dotprod);
    case OpKind::kConv2D:
      return CreateConvNeon(p, w, mode, dotprod);
    case OpKind::kDepthwiseConv2D:
      return CreateDepthwiseNeon(p, w, mode);
  }
  return nullptr;
}

}  // namespace optimized
}  // namespace core
}  // namespace ttq
