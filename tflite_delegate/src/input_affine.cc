#include "input_affine.h"

#include <algorithm>
#include <cstdlib>
#include <limits>

#include "tensorflow/lite/builtin_ops.h"

namespace ttq {
namespace {

// The leading field of TFLite's TfLiteAddParams and TfLiteMulParams (builtin_op_data.h, which
// the pinned AAR does not ship): the fused activation, numbered as the schema's
// ActivationFunctionType.
struct FusedActivationParams {
  int activation;
};
constexpr int kActNone = 0, kActRelu = 1, kActReluN1To1 = 2, kActRelu6 = 3;

// TFLite's CalculateActivationRange for float: NONE clamps to the finite floats.
bool ActivationRange(const TfLiteNode* node, float* lo, float* hi) {
  if (node->builtin_data == nullptr) return false;
  switch (static_cast<const FusedActivationParams*>(node->builtin_data)->activation) {
    case kActNone:
      *lo = std::numeric_limits<float>::lowest();
      *hi = std::numeric_limits<float>::max();
      return true;
    case kActRelu:
      *lo = 0.0f;
      *hi = std::numeric_limits<float>::max();
      return true;
    case kActReluN1To1:
      *lo = -1.0f;
      *hi = 1.0f;
      return true;
    case kActRelu6:
      *lo = 0.0f;
      *hi = 6.0f;
      return true;
    default:
      return false;
  }
}

bool ValidTensor(const TfLiteContext* context, int t) {
  return t >= 0 && static_cast<size_t>(t) < context->tensors_size;
}

// A constant float32 tensor of 1 or `channels` elements that broadcasts along the last axis
// only; its values, expanded to `channels`.
bool ChannelConstant(const TfLiteContext* context, int t, int channels,
                     std::vector<float>* values) {
  if (!ValidTensor(context, t)) return false;
  const TfLiteTensor& tensor = context->tensors[t];
  if (tensor.type != kTfLiteFloat32 || tensor.allocation_type != kTfLiteMmapRo ||
      tensor.data.raw == nullptr || tensor.dims == nullptr) {
    return false;
  }
  int64_t count = 1;
  for (int i = 0; i < tensor.dims->size; ++i) {
    const int d = tensor.dims->data[i];
    if (i + 1 < tensor.dims->size ? d != 1 : (d != 1 && d != channels)) return false;
    count *= d;
  }
  if (static_cast<int64_t>(tensor.bytes) < count * static_cast<int64_t>(sizeof(float))) {
    return false;
  }
  values->resize(static_cast<size_t>(channels));
  for (int c = 0; c < channels; ++c) (*values)[c] = tensor.data.f[count == 1 ? 0 : c];
  return true;
}

// node = op(a, constant) or op(constant, a) with one float32 output: a's index and the
// constant's values.
bool BinaryWithConstant(const TfLiteContext* context, const TfLiteNode* node, int channels,
                        int* operand, std::vector<float>* values) {
  if (node->inputs == nullptr || node->outputs == nullptr || node->inputs->size != 2 ||
      node->outputs->size != 1 || !ValidTensor(context, node->outputs->data[0]) ||
      context->tensors[node->outputs->data[0]].type != kTfLiteFloat32) {
    return false;
  }
  for (int k = 0; k < 2; ++k) {
    const int a = node->inputs->data[k], b = node->inputs->data[1 - k];
    if (ValidTensor(context, a) && context->tensors[a].type == kTfLiteFloat32 &&
        context->tensors[a].allocation_type != kTfLiteMmapRo &&
        ChannelConstant(context, b, channels, values)) {
      *operand = a;
      return true;
    }
  }
  return false;
}

// One span of the affine map (see ApplyInputAffine). On x86-64 also compiled for AVX2 (twice
// the SSE2 baseline's width; chosen at load time), as this file is built for the baseline.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
__attribute__((target_clones("avx2", "default")))
#endif
void AffineSpan(const float* __restrict x, const float* __restrict scale,
                const float* __restrict shift, int64_t len, float mul_lo, float mul_hi,
                float add_lo, float add_hi, float* __restrict mul_out, float* __restrict out) {
  // The builtin kernels' order: the product is rounded and clamped, then the sum.
  if (mul_out == nullptr) {
    for (int64_t k = 0; k < len; ++k) {
      const float m = std::min(std::max(x[k] * scale[k], mul_lo), mul_hi);
      out[k] = std::min(std::max(m + shift[k], add_lo), add_hi);
    }
  } else {
    for (int64_t k = 0; k < len; ++k) {
      const float m = std::min(std::max(x[k] * scale[k], mul_lo), mul_hi);
      mul_out[k] = m;
      out[k] = std::min(std::max(m + shift[k], add_lo), add_hi);
    }
  }
}

// The node that produces `tensor`, if it is the builtin op `builtin_code`; else null.
const TfLiteNode* ProducerOfKind(TfLiteContext* context, const TensorUses& uses, int tensor,
                                 int builtin_code) {
  const int index = uses.producer[tensor];
  TfLiteNode* node = nullptr;
  TfLiteRegistration* reg = nullptr;
  if (index < 0 || context->GetNodeAndRegistration(context, index, &node, &reg) != kTfLiteOk ||
      reg->builtin_code != builtin_code) {
    return nullptr;
  }
  return node;
}

}  // namespace

TensorUses CountTensorUses(TfLiteContext* context, const TfLiteIntArray* plan) {
  TensorUses uses;
  uses.producer.assign(context->tensors_size, -1);
  uses.readers.assign(context->tensors_size, 0);
  for (int i = 0; i < plan->size; ++i) {
    TfLiteNode* node = nullptr;
    TfLiteRegistration* reg = nullptr;
    if (context->GetNodeAndRegistration(context, plan->data[i], &node, &reg) != kTfLiteOk) {
      continue;
    }
    if (node->inputs != nullptr) {
      for (int k = 0; k < node->inputs->size; ++k) {
        if (ValidTensor(context, node->inputs->data[k])) ++uses.readers[node->inputs->data[k]];
      }
    }
    if (node->outputs != nullptr) {
      for (int k = 0; k < node->outputs->size; ++k) {
        if (ValidTensor(context, node->outputs->data[k])) {
          uses.producer[node->outputs->data[k]] = plan->data[i];
        }
      }
    }
  }
  return uses;
}

bool MatchInputAffine(TfLiteContext* context, const TensorUses& uses, int conv_input, int channels,
                      InputAffine* affine) {
  if (!ValidTensor(context, conv_input) || uses.readers[conv_input] != 1) return false;
  InputAffine a;
  std::vector<float> scale, shift;
  int product = -1, x = -1;
  const TfLiteNode* add = ProducerOfKind(context, uses, conv_input, kTfLiteBuiltinAdd);
  if (add == nullptr || !BinaryWithConstant(context, add, channels, &product, &shift) ||
      !ActivationRange(add, &a.add_lo, &a.add_hi) || uses.readers[product] != 1) {
    return false;
  }
  const TfLiteNode* mul = ProducerOfKind(context, uses, product, kTfLiteBuiltinMul);
  if (mul == nullptr || !BinaryWithConstant(context, mul, channels, &x, &scale) ||
      !ActivationRange(mul, &a.mul_lo, &a.mul_hi)) {
    return false;
  }
  const int repeats = (64 + channels - 1) / channels;
  for (int r = 0; r < repeats; ++r) {
    a.scale_span.insert(a.scale_span.end(), scale.begin(), scale.end());
    a.shift_span.insert(a.shift_span.end(), shift.begin(), shift.end());
  }
  a.channels = channels;
  a.mul_node = uses.producer[product];
  a.add_node = uses.producer[conv_input];
  a.input = x;
  a.mul_out = product;
  a.add_out = conv_input;
  *affine = std::move(a);
  return true;
}

bool FusionDisabled() {
  const char* env = std::getenv("TTQ_NO_FUSION");
  return env != nullptr && env[0] == '1';
}

void ApplyInputAffine(const InputAffine& affine, const float* x, int64_t pixels, float* mul_out,
                      float* out, core::ThreadPool* pool) {
  const int64_t span = static_cast<int64_t>(affine.scale_span.size());
  const int64_t n = pixels * affine.channels;
  const float* scale = affine.scale_span.data();
  const float* shift = affine.shift_span.data();
  const float mul_lo = affine.mul_lo, mul_hi = affine.mul_hi;
  const float add_lo = affine.add_lo, add_hi = affine.add_hi;
  // Work units of whole spans, about 4096 floats each.
  const int64_t per_unit = span * std::max<int64_t>(1, 4096 / span);
  const int64_t units = (n + per_unit - 1) / per_unit;
  if (units > std::numeric_limits<int>::max()) return;  // bounded by the activation limit
  core::ParallelFor(pool, static_cast<int>(units), [&](int begin, int end) {
    const int64_t i1 = std::min<int64_t>(n, end * per_unit);
    for (int64_t i0 = begin * per_unit; i0 < i1; i0 += span) {
      AffineSpan(x + i0, scale, shift, std::min<int64_t>(span, i1 - i0), mul_lo, mul_hi, add_lo,
                 add_hi, mul_out != nullptr ? mul_out + i0 : nullptr, out + i0);
    }
  });
}

}  // namespace ttq
