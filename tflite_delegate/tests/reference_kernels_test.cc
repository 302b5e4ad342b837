// The reference kernels against a naive direct formula: dense float weights
// w = s⁺·[t = +1] − s⁻·[t = −1], an explicitly zero-padded input and a textbook conv loop in
// double. Shapes cover strides, dilations, SAME/VALID, depth multipliers and odd sizes.
#include "core/reference_kernels.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "core/geometry.h"
#include "core/kernel.h"

namespace ttq {
namespace core {
namespace {

struct Case {
  OpKind kind;
  int batch, height, width, in_c, out_c;  // FC: height = rows, width unused
  int kh, kw, sh, sw, dh, dw;
  bool same;
  int depth_multiplier;
  Activation act;
};

struct Weights {
  std::vector<int8_t> trits;
  std::vector<float> pos, neg, bias;
  TernaryWeights view() const { return {trits.data(), pos.data(), neg.data(), bias.data()}; }
};

OpParams ToParams(const Case& c) {
  OpParams p;
  p.kind = c.kind;
  p.in_channels = c.in_c;
  p.out_channels = c.out_c;
  p.kernel_height = c.kh;
  p.kernel_width = c.kw;
  p.stride_height = c.sh;
  p.stride_width = c.sw;
  p.dilation_height = c.dh;
  p.dilation_width = c.dw;
  p.padding_same = c.same;
  p.depth_multiplier = c.depth_multiplier;
  p.activation = c.act;
  return p;
}

Weights RandomWeights(const OpParams& p, std::mt19937* rng) {
  Weights w;
  const int64_t k = RowLength(p);
  std::uniform_int_distribution<int> trit(-1, 1);
  std::uniform_real_distribution<float> scale(-0.5f, 1.5f);  // may be negative or near zero
  w.trits.resize(static_cast<size_t>(k * p.out_channels));
  for (auto& t : w.trits) t = static_cast<int8_t>(trit(*rng));
  for (int c = 0; c < p.out_channels; ++c) {
    w.pos.push_back(scale(*rng));
    w.neg.push_back(scale(*rng));
    w.bias.push_back(scale(*rng) - 0.5f);
  }
  return w;
}

double Act(Activation a, double y) {
  if (a == Activation::kRelu) return std::max(y, 0.0);
  if (a == Activation::kRelu6) return std::min(std::max(y, 0.0), 6.0);
  return y;
}

// The naive formula; `x` may be float activations or already-dequantized values.
std::vector<double> Naive(const Case& c, const OpParams& p, const Weights& w,
                          const std::vector<double>& x, int* out_h, int* out_w) {
  const int64_t k = RowLength(p);
  auto dense = [&](int oc, int64_t tap) {
    const int8_t t = w.trits[oc * k + tap];
    return t == 1 ? double{w.pos[oc]} : (t == -1 ? -double{w.neg[oc]} : 0.0);
  };
  std::vector<double> y;
  if (c.kind == OpKind::kFullyConnected) {
    for (int r = 0; r < c.height; ++r) {
      for (int oc = 0; oc < c.out_c; ++oc) {
        double acc = w.bias[oc];
        for (int i = 0; i < c.in_c; ++i) acc += dense(oc, i) * x[r * c.in_c + i];
        y.push_back(Act(c.act, acc));
      }
    }
    return y;
  }
  // TensorFlow's padding rule, written out independently of geometry.cc.
  const int ekh = (c.kh - 1) * c.dh + 1, ekw = (c.kw - 1) * c.dw + 1;
  const int oh = c.same ? (c.height + c.sh - 1) / c.sh : (c.height - ekh) / c.sh + 1;
  const int ow = c.same ? (c.width + c.sw - 1) / c.sw : (c.width - ekw) / c.sw + 1;
  const int pad_t = c.same ? std::max((oh - 1) * c.sh + ekh - c.height, 0) / 2 : 0;
  const int pad_l = c.same ? std::max((ow - 1) * c.sw + ekw - c.width, 0) / 2 : 0;
  const int ph = std::max(c.height + 2 * pad_t + ekh, (oh - 1) * c.sh + ekh + pad_t);
  const int pw = std::max(c.width + 2 * pad_l + ekw, (ow - 1) * c.sw + ekw + pad_l);
  *out_h = oh;
  *out_w = ow;
  for (int n = 0; n < c.batch; ++n) {
    std::vector<double> padded(static_cast<size_t>(ph) * pw * c.in_c, 0.0);
    for (int i = 0; i < c.height; ++i)
      for (int j = 0; j < c.width; ++j)
        for (int ci = 0; ci < c.in_c; ++ci)
          padded[((i + pad_t) * pw + j + pad_l) * c.in_c + ci] =
              x[((static_cast<int64_t>(n) * c.height + i) * c.width + j) * c.in_c + ci];
    for (int i = 0; i < oh; ++i) {
      for (int j = 0; j < ow; ++j) {
        for (int oc = 0; oc < c.out_c; ++oc) {
          double acc = w.bias[oc];
          for (int a = 0; a < c.kh; ++a) {
            for (int b = 0; b < c.kw; ++b) {
              const double* px =
                  &padded[((i * c.sh + a * c.dh) * pw + j * c.sw + b * c.dw) * c.in_c];
              if (c.kind == OpKind::kDepthwiseConv2D) {
                acc += dense(oc, a * c.kw + b) * px[oc / c.depth_multiplier];
              } else {
                for (int ci = 0; ci < c.in_c; ++ci)
                  acc += dense(oc, (a * c.kw + b) * c.in_c + ci) * px[ci];
              }
            }
          }
          y.push_back(Act(c.act, acc));
        }
      }
    }
  }
  return y;
}

// Runs the reference kernel for case `c` in `mode`.
std::vector<float> RunReference(const Case& c, const OpParams& p, const Weights& w,
                                const std::vector<float>& x, NumericMode mode) {
  auto kernel = CreateReferenceKernel(p, w.view(), mode);
  if (c.kind == OpKind::kFullyConnected) {
    std::vector<float> y(static_cast<size_t>(c.height) * c.out_c, -99.0f);
    kernel->RunFullyConnected(c.height, x.data(), y.data(), nullptr);
    return y;
  }
  ConvShape shape;
  std::string error;
  EXPECT_TRUE(ComputeConvShape(p, c.batch, c.height, c.width, &shape, &error)) << error;
  std::vector<float> y(static_cast<size_t>(c.batch) * shape.out_height * shape.out_width * c.out_c,
                       -99.0f);
  kernel->RunConv(shape, x.data(), y.data(), nullptr);
  return y;
}

std::vector<float> RandomInput(const Case& c, std::mt19937* rng) {
  const int64_t n = c.kind == OpKind::kFullyConnected
                        ? int64_t{c.height} * c.in_c
                        : int64_t{c.batch} * c.height * c.width * c.in_c;
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = d(*rng);
  return x;
}

class ReferenceKernel : public ::testing::TestWithParam<Case> {};

TEST_P(ReferenceKernel, ExactMatchesNaiveFormula) {
  const Case c = GetParam();
  const OpParams p = ToParams(c);
  std::mt19937 rng(1234);
  const Weights w = RandomWeights(p, &rng);
  const std::vector<float> x = RandomInput(c, &rng);
  int oh = 0, ow = 0;
  const std::vector<double> expected =
      Naive(c, p, w, std::vector<double>(x.begin(), x.end()), &oh, &ow);
  const std::vector<float> got = RunReference(c, p, w, x, NumericMode::kExact);
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], expected[i], 1e-5 * (1.0 + std::fabs(expected[i]))) << "element " << i;
  }
}

TEST_P(ReferenceKernel, FastInt8MatchesQuantizedFormula) {
  const Case c = GetParam();
  const OpParams p = ToParams(c);
  std::mt19937 rng(99);
  const Weights w = RandomWeights(p, &rng);
  const std::vector<float> x = RandomInput(c, &rng);
  // Quantize per FC row / per image exactly as the contract says, then run the naive formula
  // on q·scale: fast mode is exact arithmetic on the dequantized input.
  const int64_t unit =
      c.kind == OpKind::kFullyConnected ? c.in_c : int64_t{c.height} * c.width * c.in_c;
  std::vector<double> deq(x.size());
  for (size_t start = 0; start < x.size(); start += unit) {
    float m = 0.0f;
    for (int64_t i = 0; i < unit; ++i) m = std::max(m, std::fabs(x[start + i]));
    for (int64_t i = 0; i < unit; ++i) {
      const float q =
          std::min(127.0f, std::max(-127.0f, std::nearbyint(x[start + i] * (127.0f / m))));
      deq[start + i] = double{q} * (m / 127.0f);
    }
  }
  int oh = 0, ow = 0;
  const std::vector<double> expected = Naive(c, p, w, deq, &oh, &ow);
  const std::vector<float> got = RunReference(c, p, w, x, NumericMode::kFastInt8);
  const std::vector<double> exact =
      Naive(c, p, w, std::vector<double>(x.begin(), x.end()), &oh, &ow);
  ASSERT_EQ(got.size(), expected.size());
  double max_exact = 0.0;
  for (double v : exact) max_exact = std::max(max_exact, std::fabs(v));
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], expected[i], 1e-4 * (1.0 + std::fabs(expected[i]))) << "element " << i;
    // And fast mode stays close to exact mode: a few percent of the output range.
    ASSERT_NEAR(got[i], exact[i], 0.05 * (1.0 + max_exact)) << "element " << i;
  }
}

// clang-format off
INSTANTIATE_TEST_SUITE_P(Shapes, ReferenceKernel, ::testing::Values(
    //   kind                        N  H  W  Cin Cout kh kw sh sw dh dw same  dm act
    Case{OpKind::kConv2D,            1, 5, 5, 3,  4,   3, 3, 1, 1, 1, 1, true, 1, Activation::kNone},
    Case{OpKind::kConv2D,            2, 7, 6, 2,  5,   3, 2, 2, 1, 1, 1, true, 1, Activation::kRelu},
    Case{OpKind::kConv2D,            1, 9, 8, 3,  3,   3, 3, 2, 3, 2, 1, false, 1, Activation::kRelu6},
    Case{OpKind::kConv2D,            1, 6, 7, 1,  2,   2, 3, 1, 2, 2, 2, true, 1, Activation::kNone},
    Case{OpKind::kConv2D,            1, 4, 4, 7,  1,   1, 1, 1, 1, 1, 1, false, 1, Activation::kNone},
    Case{OpKind::kDepthwiseConv2D,   1, 5, 5, 3,  3,   3, 3, 1, 1, 1, 1, true, 1, Activation::kNone},
    Case{OpKind::kDepthwiseConv2D,   2, 6, 5, 2,  6,   3, 3, 2, 2, 1, 1, true, 3, Activation::kRelu},
    Case{OpKind::kDepthwiseConv2D,   1, 8, 8, 4,  8,   2, 3, 1, 2, 2, 1, false, 2, Activation::kRelu6},
    Case{OpKind::kFullyConnected,    1, 1, 1, 7,  3,   1, 1, 1, 1, 1, 1, false, 1, Activation::kNone},
    Case{OpKind::kFullyConnected,    1, 5, 1, 33, 10,  1, 1, 1, 1, 1, 1, false, 1, Activation::kRelu},
    Case{OpKind::kFullyConnected,    1, 3, 1, 64, 17,  1, 1, 1, 1, 1, 1, false, 1, Activation::kRelu6}));
// clang-format on

TEST(ReferenceKernel, ZeroInputInFastModeGivesBias) {
  OpParams p;
  p.kind = OpKind::kFullyConnected;
  p.in_channels = 6;
  p.out_channels = 2;
  const std::vector<int8_t> trits = {1, -1, 0, 1, 1, -1, 0, 0, 1, -1, -1, 1};
  const std::vector<float> pos = {1.0f, 2.0f}, neg = {0.5f, 3.0f}, bias = {0.25f, -1.5f};
  auto kernel = CreateReferenceKernel(p, {trits.data(), pos.data(), neg.data(), bias.data()},
                                      NumericMode::kFastInt8);
  const std::vector<float> x(6, 0.0f);
  std::vector<float> y(2);
  kernel->RunFullyConnected(1, x.data(), y.data(), nullptr);
  EXPECT_EQ(y, bias);
}

TEST(ReferenceKernel, HandComputedFullyConnected) {
  OpParams p;
  p.kind = OpKind::kFullyConnected;
  p.in_channels = 3;
  p.out_channels = 2;
  p.activation = Activation::kRelu;
  const std::vector<int8_t> trits = {1, -1, 0, -1, -1, 1};
  const std::vector<float> pos = {2.0f, 1.0f}, neg = {0.5f, 4.0f}, bias = {0.1f, 0.0f};
  auto kernel = CreateReferenceKernel(p, {trits.data(), pos.data(), neg.data(), bias.data()},
                                      NumericMode::kExact);
  const std::vector<float> x = {1.0f, 2.0f, 3.0f};
  std::vector<float> y(2);
  kernel->RunFullyConnected(1, x.data(), y.data(), nullptr);
  // c0: 2·1 − 0.5·2 + 0.1 = 1.1; c1: 1·3 − 4·(1 + 2) = −9 -> relu 0.
  EXPECT_FLOAT_EQ(y[0], 1.1f);
  EXPECT_FLOAT_EQ(y[1], 0.0f);
  EXPECT_STREQ(kernel->Name(), "reference");
}

TEST(Geometry, SameAndValid) {
  OpParams p;
  p.kernel_height = p.kernel_width = 3;
  p.stride_height = p.stride_width = 2;
  p.padding_same = true;
  ConvShape s;
  std::string error;
  ASSERT_TRUE(ComputeConvShape(p, 1, 7, 8, &s, &error));
  EXPECT_EQ(s.out_height, 4);  // ceil(7 / 2)
  EXPECT_EQ(s.out_width, 4);
  EXPECT_EQ(s.pad_top, 1);   // pad_total = 3·2 + 3 − 7 = 2
  EXPECT_EQ(s.pad_left, 0);  // pad_total = 3·2 + 3 − 8 = 1 -> before 0
  p.padding_same = false;
  ASSERT_TRUE(ComputeConvShape(p, 1, 7, 8, &s, &error));
  EXPECT_EQ(s.out_height, 3);
  EXPECT_EQ(s.out_width, 3);
  EXPECT_FALSE(ComputeConvShape(p, 1, 2, 8, &s, &error));
  EXPECT_NE(error.find("empty output"), std::string::npos);
}

}  // namespace
}  // namespace core
}  // namespace ttq
