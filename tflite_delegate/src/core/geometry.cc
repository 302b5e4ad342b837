#include "core/geometry.h"

#include <algorithm>
#include <cstdint>

namespace ttq {
namespace core {
namespace {

// Largest input coordinate a tap may reach, (out - 1) * stride + effective kernel: kernels
// compute it in int, so a geometry beyond int32 is rejected (a hostile file's huge dilation
// with SAME padding would otherwise overflow it).
constexpr int64_t kMaxCoordinate = 2147483647;

// One spatial axis. Returns false when the output is empty.
bool Axis(int in, int kernel, int stride, int dilation, bool same, int* out, int* pad_before) {
  const int64_t effective = static_cast<int64_t>(kernel - 1) * dilation + 1;
  int64_t o;
  if (same) {
    o = (static_cast<int64_t>(in) + stride - 1) / stride;
    const int64_t pad_total = std::max<int64_t>((o - 1) * stride + effective - in, 0);
    *pad_before = static_cast<int>(pad_total / 2);
  } else {
    o = in >= effective ? (in - effective) / stride + 1 : 0;
    *pad_before = 0;
  }
  *out = static_cast<int>(o);
  return o > 0;
}

}  // namespace

bool ComputeConvShape(const OpParams& params, int batch, int in_height, int in_width,
                      ConvShape* shape, std::string* error) {
  if (batch < 0 || in_height < 1 || in_width < 1) {
    *error = "input spatial size must be positive, got height " + std::to_string(in_height) +
             " and width " + std::to_string(in_width);
    return false;
  }
  shape->batch = batch;
  shape->in_height = in_height;
  shape->in_width = in_width;
  if (!Axis(in_height, params.kernel_height, params.stride_height, params.dilation_height,
            params.padding_same, &shape->out_height, &shape->pad_top) ||
      !Axis(in_width, params.kernel_width, params.stride_width, params.dilation_width,
            params.padding_same, &shape->out_width, &shape->pad_left)) {
    *error = "VALID padding with input " + std::to_string(in_height) + "x" +
             std::to_string(in_width) + " smaller than the dilated kernel " +
             std::to_string((params.kernel_height - 1) * params.dilation_height + 1) + "x" +
             std::to_string((params.kernel_width - 1) * params.dilation_width + 1) +
             " gives an empty output";
    return false;
  }
  const auto reach = [](int out, int stride, int kernel, int dilation) {
    return static_cast<int64_t>(out - 1) * stride + static_cast<int64_t>(kernel - 1) * dilation + 1;
  };
  if (reach(shape->out_height, params.stride_height, params.kernel_height, params.dilation_height) >
          kMaxCoordinate ||
      reach(shape->out_width, params.stride_width, params.kernel_width, params.dilation_width) >
          kMaxCoordinate) {
    *error =
        "the dilated kernel with these strides reaches past coordinate 2^31 - 1 of the "
        "padded input (a geometry no kernel can index)";
    return false;
  }
  return true;
}

int64_t RowLength(const OpParams& params) {
  switch (params.kind) {
    case OpKind::kConv2D:
      return static_cast<int64_t>(params.kernel_height) * params.kernel_width * params.in_channels;
    case OpKind::kDepthwiseConv2D:
      return static_cast<int64_t>(params.kernel_height) * params.kernel_width;
    case OpKind::kFullyConnected:
      return params.in_channels;
  }
  return 0;
}

}  // namespace core
}  // namespace ttq
