// The interface between the delegate glue (which knows TFLite) and the kernels (which do not).
//
// A kernel is created once per delegated node in Prepare, from the unpacked trits and the
// per-channel scales (docs/format.md), and run many times in Eval. Implementations:
//   - reference_kernels.{h,cc}: plain loops, the oracle for every test;
//   - optimized/ (x86-64 AVX2, AVX-512/VNNI chosen at run time; room for arm64 NEON).
// Nothing under src/core/ includes a TFLite header.
#ifndef TTQ_DELEGATE_CORE_KERNEL_H_
#define TTQ_DELEGATE_CORE_KERNEL_H_

#include <cstdint>
#include <memory>
#include <string>

namespace ttq {
namespace core {

enum class Activation { kNone, kRelu, kRelu6 };

// Exact: float activations, matches Keras up to float rounding (the default).
// FastInt8: activations quantized dynamically to int8 per input row, like TFLite's hybrid kernels.
enum class NumericMode { kExact, kFastInt8 };

enum class OpKind { kConv2D, kDepthwiseConv2D, kFullyConnected };

// Shapes and attributes of one op. For fully connected only in_channels (= in_features) and
// out_channels (= out_features) are used; rows come at Run time.
struct OpParams {
  OpKind kind = OpKind::kConv2D;
  int in_channels = 0;
  int out_channels = 0;
  int kernel_height = 1, kernel_width = 1;
  int stride_height = 1, stride_width = 1;
  int dilation_height = 1, dilation_width = 1;
  bool padding_same = false;
  int depth_multiplier = 1;
  Activation activation = Activation::kNone;
};

// Geometry of one Run call for conv and depthwise (NHWC float input and output).
struct ConvShape {
  int batch = 0, in_height = 0, in_width = 0;
  int out_height = 0, out_width = 0;
  int pad_top = 0, pad_left = 0;
};

// Trits of one op, unpacked: [out_channels][K] int8 in {-1, 0, +1}, with K as in
// docs/format.md section 2 (conv: KH*KW*Cin in (kh, kw, ci) order; depthwise: KH*KW; fc: in).
struct TernaryWeights {
  const int8_t* trits = nullptr;
  const float* pos_scales = nullptr;  // [out_channels]
  const float* neg_scales = nullptr;  // [out_channels]
  const float* bias = nullptr;        // [out_channels]
};

class ThreadPool;  // thread_pool.h; nullptr means run on the calling thread.

class TernaryKernel {
 public:
  virtual ~TernaryKernel() = default;
  // Conv and depthwise: input [batch, in_h, in_w, in_c], output [batch, out_h, out_w, out_c].
  virtual void RunConv(const ConvShape& shape, const float* input, float* output,
                       ThreadPool* pool) = 0;
  // Fully connected: input [rows, in_features], output [rows, out_features].
  virtual void RunFullyConnected(int rows, const float* input, float* output, ThreadPool* pool) = 0;
  virtual const char* Name() const = 0;
};

// Creates the best kernel for this CPU and mode; copies what it needs from `weights`, which
// the caller may free afterwards. Never returns nullptr: falls back to the reference kernel.
std::unique_ptr<TernaryKernel> CreateKernel(const OpParams& params, const TernaryWeights& weights,
                                            NumericMode mode);

// The reference kernel, always available (the test oracle), is CreateReferenceKernel in
// reference_kernels.h.

}  // namespace core
}  // namespace ttq

#endif  // TTQ_DELEGATE_CORE_KERNEL_H_
