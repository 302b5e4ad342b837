// CreateKernel for builds without the optimized kernels (TTQ_WITH_OPTIMIZED=OFF, or
// src/core/optimized/ absent): every op runs on the reference kernel.
#include "core/kernel.h"
#include "core/reference_kernels.h"

namespace ttq {
namespace core {

std::unique_ptr<TernaryKernel> CreateKernel(const OpParams& params, const TernaryWeights& weights,
                                            NumericMode mode) {
  return CreateReferenceKernel(params, weights, mode);
}

}  // namespace core
}  // namespace ttq
