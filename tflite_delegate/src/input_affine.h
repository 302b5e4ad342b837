// Fusing the per-channel affine map that feeds a TTQ convolution into its delegate kernel.
//
// A BatchNormalization that the converter cannot fold into a weight (pre-activation ResNets:
// BN -> ReLU -> conv) reaches TFLite as MUL(x, scale[C]) -> ADD(., shift[C], fused ReLU) ->
// TTQ_CONV_2D. Run as builtin ops, the two element-wise ops cost more than the convolution's
// own multi-threaded share at 2 threads, all on one thread (BENCHMARKS.md). The delegate
// claims the three nodes as one partition instead and computes y = act(act(x·scale)+shift),
// the same float32 operations in the same order as the builtin kernels, on its own threads
// into a scratch image, then runs the convolution on it.
//
// Matched only when: MUL and ADD are float32 with one operand a constant of C elements
// (shape [C], [1, C], [1, 1, 1, C] or a single value), their fused activation is NONE, RELU,
// RELU_N1_TO_1 or RELU6, the MUL output feeds only the ADD and the ADD output only the
// convolution. If the runtime still lists an intermediate tensor as a partition output (a graph
// output), the kernel writes it too. TTQ_NO_FUSION=1 turns the fusion off (for A/B checks).
#ifndef TTQ_DELEGATE_INPUT_AFFINE_H_
#define TTQ_DELEGATE_INPUT_AFFINE_H_

#include <cstdint>
#include <vector>

#include "core/thread_pool.h"
#include "tensorflow/lite/c/common.h"

namespace ttq {

struct InputAffine {
  int mul_node = -1, add_node = -1;
  int input = -1;    // x, the MUL's non-constant operand: the fused partition's input
  int mul_out = -1;  // x·scale
  int add_out = -1;  // the convolution's input
  int channels = 0;  // C
  // The MUL's and the ADD's C constants repeated over a whole number of pixels of at least 64
  // floats, so that the inner loop is long enough to vectorize well whatever C is.
  std::vector<float> scale_span, shift_span;
  float mul_lo, mul_hi, add_lo, add_hi;  // fused activation clamps (±inf for NONE)
};

// Producer node of every tensor (-1 if none) and the number of node inputs that read it, over
// the nodes of `plan`. Out-of-range tensor indices in hostile nodes are skipped.
struct TensorUses {
  std::vector<int> producer;
  std::vector<int> readers;
};
TensorUses CountTensorUses(TfLiteContext* context, const TfLiteIntArray* plan);

// Whether the tensor `conv_input` (read by a TTQ convolution with `channels` input channels)
// is produced by the MUL -> ADD pattern above; fills `affine` if so.
bool MatchInputAffine(TfLiteContext* context, const TensorUses& uses, int conv_input, int channels,
                      InputAffine* affine);

// Whether TTQ_NO_FUSION=1 is set (read on every call, so that tests can toggle it).
bool FusionDisabled();

// out[p·C + c] = clamp(clamp(x[p·C + c]·scale[c])+shift[c]) for `pixels` pixels; also stores
// the clamped products in mul_out when it is not null.
void ApplyInputAffine(const InputAffine& affine, const float* x, int64_t pixels, float* mul_out,
                      float* out, core::ThreadPool* pool);

}  // namespace ttq

#endif  // TTQ_DELEGATE_INPUT_AFFINE_H_
