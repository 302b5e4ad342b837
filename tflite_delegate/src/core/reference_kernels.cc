#include "core/reference_kernels.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/geometry.h"

namespace ttq {
namespace core {
namespace {

// Accumulators for one output element: Σ over positive taps and Σ over negative taps.
template <typename T>
struct Sums {
  T pos = 0;
  T neg = 0;
  void Add(int8_t trit, T x) {
    if (trit > 0) {
      pos += x;
    } else if (trit < 0) {
      neg += x;
    }
  }
};

// One class for both modes: T is the activation element (float or int8) and Acc its
// accumulator (double or int32).
class ReferenceKernel final : public TernaryKernel {
 public:
  ReferenceKernel(const OpParams& params, const TernaryWeights& weights, NumericMode mode)
      : params_(params), mode_(mode), k_(RowLength(params)) {
    const int c = params.out_channels;
    trits_.assign(weights.trits, weights.trits + static_cast<size_t>(c) * k_);
    pos_scales_.assign(weights.pos_scales, weights.pos_scales + c);
    neg_scales_.assign(weights.neg_scales, weights.neg_scales + c);
    bias_.assign(weights.bias, weights.bias + c);
  }

  void RunConv(const ConvShape& shape, const float* input, float* output,
               ThreadPool* /*pool*/) override {
    const int64_t image =
        static_cast<int64_t>(shape.in_height) * shape.in_width * params_.in_channels;
    const int64_t out_image =
        static_cast<int64_t>(shape.out_height) * shape.out_width * params_.out_channels;
    std::vector<int8_t> q;
    for (int n = 0; n < shape.batch; ++n) {
      const float* x = input + n * image;
      float* y = output + n * out_image;
      if (mode_ == NumericMode::kExact) {
        ConvImage<float, double>(shape, x, y, 1.0f);
      } else {
        q.resize(static_cast<size_t>(image));
        const float scale = QuantizeSymmetricInt8(x, image, q.data());
        ConvImage<int8_t, int32_t>(shape, q.data(), y, scale);
      }
    }
  }

  void RunFullyConnected(int rows, const float* input, float* output,
                         ThreadPool* /*pool*/) override {
    const int in = params_.in_channels;
    const int out = params_.out_channels;
    std::vector<int8_t> q(static_cast<size_t>(in));
    for (int r = 0; r < rows; ++r) {
      const float* x = input + static_cast<int64_t>(r) * in;
      float* y = output + static_cast<int64_t>(r) * out;
      if (mode_ == NumericMode::kExact) {
        for (int c = 0; c < out; ++c) {
          Sums<double> s;
          const int8_t* w = trits_.data() + static_cast<int64_t>(c) * k_;
          for (int k = 0; k < in; ++k) s.Add(w[k], x[k]);
          y[c] = Finish(c, s, 1.0f);
        }
      } else {
        const float scale = QuantizeSymmetricInt8(x, in, q.data());
        for (int c = 0; c < out; ++c) {
          Sums<int32_t> s;
          const int8_t* w = trits_.data() + static_cast<int64_t>(c) * k_;
          for (int k = 0; k < in; ++k) s.Add(w[k], q[k]);
          y[c] = Finish(c, s, scale);
        }
      }
    }
  }

  const char* Name() const override {
    return mode_ == NumericMode::kExact ? "reference" : "reference_int8";
  }

 private:
  float Finish(int c, const Sums<double>& s, float /*scale*/) const {
    const double y = static_cast<double>(pos_scales_[c]) * s.pos -
                     static_cast<double>(neg_scales_[c]) * s.neg + bias_[c];
    return ApplyActivation(params_.activation, static_cast<float>(y));
  }
  float Finish(int c, const Sums<int32_t>& s, float scale) const {
    const float y = scale * (pos_scales_[c] * static_cast<float>(s.pos) -
                             neg_scales_[c] * static_cast<float>(s.neg)) +
                    bias_[c];
    return ApplyActivation(params_.activation, y);
  }

  // One image: x is [in_h, in_w, in_c], y is [out_h, out_w, out_c].
  template <typename T, typename Acc>
  void ConvImage(const ConvShape& shape, const T* x, float* y, float scale) const {
    const OpParams& p = params_;
    const bool depthwise = p.kind == OpKind::kDepthwiseConv2D;
    for (int oh = 0; oh < shape.out_height; ++oh) {
      for (int ow = 0; ow < shape.out_width; ++ow) {
        float* out = y + (static_cast<int64_t>(oh) * shape.out_width + ow) * p.out_channels;
        for (int c = 0; c < p.out_channels; ++c) {
          const int8_t* w = trits_.data() + static_cast<int64_t>(c) * k_;
          Sums<Acc> s;
          for (int kh = 0; kh < p.kernel_height; ++kh) {
            const int ih = oh * p.stride_height + kh * p.dilation_height - shape.pad_top;
            if (ih < 0 || ih >= shape.in_height) continue;  // padding reads 0
            for (int kw = 0; kw < p.kernel_width; ++kw) {
              const int iw = ow * p.stride_width + kw * p.dilation_width - shape.pad_left;
              if (iw < 0 || iw >= shape.in_width) continue;
              const T* pixel = x + (static_cast<int64_t>(ih) * shape.in_width + iw) * p.in_channels;
              if (depthwise) {
                s.Add(w[kh * p.kernel_width + kw], pixel[c / p.depth_multiplier]);
              } else {
                const int8_t* wt = w + (kh * p.kernel_width + kw) * p.in_channels;
                for (int ci = 0; ci < p.in_channels; ++ci) s.Add(wt[ci], pixel[ci]);
              }
            }
          }
          out[c] = Finish(c, s, scale);
        }
      }
    }
  }

  const OpParams params_;
  const NumericMode mode_;
  const int64_t k_;
  std::vector<int8_t> trits_;
  std::vector<float> pos_scales_, neg_scales_, bias_;
};

}  // namespace

float QuantizeSymmetricInt8(const float* x, int64_t n, int8_t* q) {
  float m = 0.0f;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::fabs(x[i]));
  if (!(m > 0.0f) || !std::isfinite(m)) {
    std::fill(q, q + n, 0);
    return 0.0f;
  }
  const float inv = 127.0f / m;
  for (int64_t i = 0; i < n; ++i) {
    const float v = std::nearbyint(x[i] * inv);
    q[i] = static_cast<int8_t>(std::min(127.0f, std::max(-127.0f, v)));
  }
  return m / 127.0f;
}

std::unique_ptr<TernaryKernel> CreateReferenceKernel(const OpParams& params,
                                                     const TernaryWeights& weights,
                                                     NumericMode mode) {
  return std::unique_ptr<TernaryKernel>(new ReferenceKernel(params, weights, mode));
}

}  // namespace core
}  // namespace ttq
