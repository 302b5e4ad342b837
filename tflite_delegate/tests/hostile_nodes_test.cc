// Regression tests for the delegate bugs the fuzzers and the hostile corpus found
// (docs/format.md section 5): each node must be rejected in Prepare with a message, never run.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "../fuzz/flexbuffer_writer.h"
#include "../fuzz/one_op_graph.h"
#include "core/geometry.h"
#include "core/packing.h"
#include "ttq_delegate/ttq_delegate.h"

namespace ttq {
namespace {

using fuzz::FlexEntry;
using fuzz::OneOpGraph;
using fuzz::RunOutcome;
using fuzz::TensorSpec;

struct Conv {
  int cin = 2, cout = 3, kh = 3, kw = 3, dilation_h = 1;
  std::string padding = "SAME";
  std::vector<int> in_dims = {1, 5, 5, 2};
  std::vector<int> outputs = {5};
  float pos0 = 1.0f;
};

std::vector<uint8_t> Options(const Conv& c) {
  std::vector<FlexEntry> e;
  auto add = [&](const char* k, int64_t v) {
    FlexEntry f;
    f.key = k;
    f.int_value = v;
    e.push_back(f);
  };
  auto add_s = [&](const char* k, const std::string& v) {
    FlexEntry f;
    f.kind = FlexEntry::Kind::kString;
    f.key = k;
    f.string_value = v;
    e.push_back(f);
  };
  add_s("activation", "NONE");
  add("dilation_height", c.dilation_h);
  add("dilation_width", 1);
  add("in_channels", c.cin);
  add("kernel_height", c.kh);
  add("kernel_width", c.kw);
  add("out_channels", c.cout);
  add_s("padding", c.padding);
  add("stride_height", 1);
  add("stride_width", 1);
  add("version", 1);
  return fuzz::FlexMapWriter().Write(e);
}

template <typename T>
std::vector<uint8_t> Bytes(const std::vector<T>& v) {
  const auto* p = reinterpret_cast<const uint8_t*>(v.data());
  return std::vector<uint8_t>(p, p + v.size() * sizeof(T));
}

// Runs the conv through the delegate; returns the outcome and the reported errors.
RunOutcome RunConvNode(const Conv& c, std::string* errors) {
  const int k = c.kh * c.kw * c.cin;
  std::vector<int8_t> trits(c.cout * k, 1);
  std::vector<uint8_t> codes;
  std::string e;
  core::PackTrits(trits.data(), c.cout, k, &codes, &e);
  std::vector<float> pos(c.cout, 1.0f), neg(c.cout, 1.0f), bias(c.cout, 0.0f);
  pos[0] = c.pos0;
  int64_t n = 1;
  bool huge = false;
  for (int d : c.in_dims) {
    if (d < 0 || (d > 0 && n > (int64_t{1} << 20) / d)) huge = true;
    if (!huge) n *= d;
  }
  std::vector<float> x(huge ? 0 : static_cast<size_t>(n), 0.5f);
  std::vector<TensorSpec> t(6);
  t[0].dims = c.in_dims;
  t[0].data = Bytes(x);
  t[0].has_data = !huge;
  t[1].type = kTfLiteUInt8;
  t[1].dims = {c.cout, static_cast<int>(core::PackedRowBytes(k))};
  t[1].data = codes;
  t[1].constant = true;
  for (int i = 2; i <= 4; ++i) {
    t[i].dims = {c.cout};
    t[i].constant = true;
  }
  t[2].data = Bytes(pos);
  t[3].data = Bytes(neg);
  t[4].data = Bytes(bias);
  t[5].dims = {1};
  TfLiteDelegate* d = TfLiteTtqDelegateCreate(nullptr);
  OneOpGraph g(t, {0, 1, 2, 3, 4}, c.outputs, "TTQ_CONV_2D", Options(c));
  const RunOutcome outcome = g.Run(d);
  *errors = g.errors();
  TfLiteTtqDelegateDelete(d);
  return outcome;
}

TEST(HostileNodesTest, ValidConvRuns) {
  std::string errors;
  EXPECT_EQ(RunConvNode(Conv(), &errors), RunOutcome::kRan) << errors;
}

TEST(HostileNodesTest, OutputThatIsAlsoTheInputIsRejected) {
  Conv c;
  c.outputs = {0};  // fuzz_one_op: heap overflow in the fast-mode quantization before the fix
  std::string errors;
  EXPECT_EQ(RunConvNode(c, &errors), RunOutcome::kRejected);
  EXPECT_NE(errors.find("is also input 0 (input)"), std::string::npos) << errors;
}

TEST(HostileNodesTest, NonFiniteScalesAreRejected) {
  for (float v : {std::nanf(""), std::numeric_limits<float>::infinity(),
                  -std::numeric_limits<float>::infinity()}) {
    Conv c;
    c.pos0 = v;
    std::string errors;
    EXPECT_EQ(RunConvNode(c, &errors), RunOutcome::kRejected);
    EXPECT_NE(errors.find("non-finite value at channel 0"), std::string::npos) << errors;
  }
}

TEST(HostileNodesTest, HugeDeclaredInputsAreRejectedBeforeAnyAllocation) {
  for (std::vector<int> dims :
       std::vector<std::vector<int>>{{2147483647, 5, 5, 2},
                                     {1, 46341, 46341, 2},
                                     {1 << 20, 64, 64, 2},
                                     {2147483647, 2147483647, 2147483647, 2},
                                     {1, -5, 5, 2}}) {
    Conv c;
    c.in_dims = dims;
    std::string errors;
    EXPECT_EQ(RunConvNode(c, &errors), RunOutcome::kRejected);
    EXPECT_NE(errors.find("more than 2^28 elements"), std::string::npos) << errors;
  }
}

TEST(HostileNodesTest, GeometryBeyondInt32IsRejected) {
  // SAME padding, 2 taps 2^30 apart: (out - 1) * s + ek = 4 + 2^30 ... within the options'
  // limits but past int32 together with the output rows, before the fix an int overflow in
  // the kernels' tap coordinates.
  core::OpParams p;
  p.in_channels = 1;
  p.out_channels = 1;
  p.kernel_height = 2;
  p.dilation_height = 2147483646;
  p.padding_same = true;
  core::ConvShape shape;
  std::string error;
  EXPECT_FALSE(core::ComputeConvShape(p, 1, 8, 1, &shape, &error));
  EXPECT_NE(error.find("past coordinate 2^31 - 1"), std::string::npos) << error;
  p.dilation_height = 1;
  EXPECT_TRUE(core::ComputeConvShape(p, 1, 8, 1, &shape, &error)) << error;
}

}  // namespace
}  // namespace ttq
