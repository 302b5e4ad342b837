// The delegate glue on a hand-built TfLiteContext: one TTQ_FULLY_CONNECTED node, the runtime's
// side (plan walk, ReplaceNodeSubsetsWithDelegateKernels, init/prepare/invoke) emulated here.
// Covers the claim, a correct Eval, output resizing, and the Prepare failures of format.md §5.
#include <gtest/gtest.h>

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/packing.h"
#include "format_vectors.h"
#include "tensorflow/lite/builtin_ops.h"
#include "tensorflow/lite/c/common.h"
#include "ttq_delegate/ttq_delegate.h"

extern "C" TfLiteDelegate* tflite_plugin_create_delegate(const char* const*, const char* const*,
                                                         size_t, void (*)(const char*));
extern "C" void tflite_plugin_destroy_delegate(TfLiteDelegate*);

namespace ttq {
namespace {

TfLiteIntArray* MakeDims(std::initializer_list<int> dims) {
  auto* a =
      static_cast<TfLiteIntArray*>(std::malloc(sizeof(TfLiteIntArray) + sizeof(int) * dims.size()));
  a->size = static_cast<int>(dims.size());
  int i = 0;
  for (int d : dims) a->data[i++] = d;
  return a;
}

// A one-node graph: y = TTQ_FULLY_CONNECTED(x[2, 6]) with C_out = 3.
class FakeGraph {
 public:
  FakeGraph() {
    trits_ = {1,  -1, 0, 1, 0,  -1,  //
              0,  0,  1, 1, -1, -1,  //
              -1, 1,  1, 0, 0,  1};
    std::string error;
    core::PackTrits(trits_.data(), 3, 6, &codes_, &error);
    pos_ = {1.0f, 0.5f, 2.0f};
    neg_ = {2.0f, 1.5f, 0.25f};
    bias_ = {0.1f, -0.2f, 0.3f};
    input_ = {1, 2, 3, 4, 5, 6, -1, 0.5f, 0, 2, -3, 1};
    output_.assign(6, -99.0f);
    options_ = testing::OptionsBytes("fc_6x3");

    tensors_.resize(6);
    std::memset(tensors_.data(), 0, sizeof(TfLiteTensor) * tensors_.size());
    AddTensor(0, "x", kTfLiteFloat32, MakeDims({2, 6}), input_.data(), 48, kTfLiteArenaRw);
    AddTensor(1, "codes", kTfLiteUInt8, MakeDims({3, 2}), codes_.data(), codes_.size(),
              kTfLiteMmapRo);
    AddTensor(2, "pos", kTfLiteFloat32, MakeDims({3}), pos_.data(), 12, kTfLiteMmapRo);
    AddTensor(3, "neg", kTfLiteFloat32, MakeDims({3}), neg_.data(), 12, kTfLiteMmapRo);
    AddTensor(4, "bias", kTfLiteFloat32, MakeDims({3}), bias_.data(), 12, kTfLiteMmapRo);
    AddTensor(5, "y", kTfLiteFloat32, MakeDims({2, 3}), output_.data(), 24, kTfLiteArenaRw);

    std::memset(&node_, 0, sizeof(node_));
    node_.inputs = MakeDims({0, 1, 2, 3, 4});
    node_.outputs = MakeDims({5});
    std::memset(&reg_, 0, sizeof(reg_));
    reg_.builtin_code = kTfLiteBuiltinCustom;
    reg_.custom_name = "TTQ_FULLY_CONNECTED";
    plan_ = MakeDims({0});

    std::memset(&context_, 0, sizeof(context_));
    context_.impl_ = this;
    context_.tensors = tensors_.data();
    context_.tensors_size = tensors_.size();
    context_.GetExecutionPlan = [](TfLiteContext* c, TfLiteIntArray** plan) {
      *plan = Self(c)->plan_;
      return kTfLiteOk;
    };
    context_.GetNodeAndRegistration = [](TfLiteContext* c, int index, TfLiteNode** node,
                                         TfLiteRegistration** reg) {
      if (index != 0) return kTfLiteError;
      *node = &Self(c)->node_;
      *reg = &Self(c)->reg_;
      return kTfLiteOk;
    };
    context_.ReplaceNodeSubsetsWithDelegateKernels = [](TfLiteContext* c, TfLiteRegistration reg,
                                                        const TfLiteIntArray* nodes,
                                                        TfLiteDelegate* delegate) {
      FakeGraph* self = Self(c);
      self->delegate_reg_ = reg;
      self->replaced_.assign(nodes->data, nodes->data + nodes->size);
      self->delegate_ = delegate;
      return kTfLiteOk;
    };
    context_.ResizeTensor = [](TfLiteContext*, TfLiteTensor* t, TfLiteIntArray* dims) {
      std::free(t->dims);
      t->dims = dims;
      return kTfLiteOk;
    };
    context_.ReportError = &FakeGraph::ReportError;
  }

  ~FakeGraph() {
    for (auto& t : tensors_) std::free(t.dims);
    std::free(node_.inputs);
    std::free(node_.outputs);
    std::free(plan_);
  }

  // Applies the delegate; on success also initializes, prepares and invokes the kernel node
  // the way the runtime would.
  TfLiteStatus Apply(TfLiteDelegate* delegate) {
    node_.custom_initial_data = options_.data();
    node_.custom_initial_data_size = static_cast<int>(options_.size());
    TfLiteStatus status = delegate->Prepare(&context_, delegate);
    if (status != kTfLiteOk) return status;
    if (replaced_.size() != 1) return kTfLiteError;
    TfLiteIntArray* nodes = MakeDims({replaced_[0]});
    TfLiteDelegateParams params{delegate_, nodes, node_.inputs, node_.outputs};
    void* user_data = delegate_reg_.init(&context_, reinterpret_cast<const char*>(&params), 0);
    std::free(nodes);
    TfLiteNode kernel_node;
    std::memset(&kernel_node, 0, sizeof(kernel_node));
    kernel_node.user_data = user_data;
    status = delegate_reg_.prepare(&context_, &kernel_node);
    if (status == kTfLiteOk) status = delegate_reg_.invoke(&context_, &kernel_node);
    delegate_reg_.free(&context_, user_data);
    return status;
  }

  std::vector<float> Expected() const {
    std::vector<float> y;
    for (int r = 0; r < 2; ++r) {
      for (int c = 0; c < 3; ++c) {
        double acc = bias_[c];
        for (int k = 0; k < 6; ++k) {
          const int8_t t = trits_[c * 6 + k];
          acc += (t == 1 ? pos_[c] : (t == -1 ? -neg_[c] : 0.0)) * input_[r * 6 + k];
        }
        y.push_back(static_cast<float>(acc));
      }
    }
    return y;
  }

  std::vector<TfLiteTensor> tensors_;
  std::vector<uint8_t> codes_;
  std::vector<int8_t> trits_;
  std::vector<float> pos_, neg_, bias_, input_, output_;
  std::vector<uint8_t> options_;
  TfLiteNode node_;
  TfLiteRegistration reg_;
  TfLiteIntArray* plan_;
  TfLiteContext context_;
  TfLiteRegistration delegate_reg_{};
  TfLiteDelegate* delegate_ = nullptr;
  std::vector<int> replaced_;
  std::string errors_;

 private:
  static FakeGraph* Self(TfLiteContext* c) { return static_cast<FakeGraph*>(c->impl_); }
  static void ReportError(TfLiteContext* c, const char* format, ...) {
    char buffer[1024];
    va_list args;
    va_start(args, format);
    std::vsnprintf(buffer, sizeof(buffer), format, args);
    va_end(args);
    Self(c)->errors_ += buffer;
    Self(c)->errors_ += "\n";
  }
  void AddTensor(int i, const char* name, TfLiteType type, TfLiteIntArray* dims, void* data,
                 size_t bytes, TfLiteAllocationType alloc) {
    TfLiteTensor& t = tensors_[i];
    t.type = type;
    t.dims = dims;
    t.data.raw = static_cast<char*>(data);
    t.bytes = bytes;
    t.allocation_type = alloc;
    t.name = name;
  }
};

class DelegateGlue : public ::testing::Test {
 protected:
  void SetUp() override { delegate_ = TfLiteTtqDelegateCreate(nullptr); }
  void TearDown() override { TfLiteTtqDelegateDelete(delegate_); }
  void ExpectPrepareError(FakeGraph* g, const std::string& fragment) {
    EXPECT_EQ(g->Apply(delegate_), kTfLiteError);
    EXPECT_NE(g->errors_.find("TTQ delegate: node 0 (TTQ_FULLY_CONNECTED): "), std::string::npos)
        << g->errors_;
    EXPECT_NE(g->errors_.find(fragment), std::string::npos) << g->errors_;
    EXPECT_TRUE(g->replaced_.empty());
  }
  TfLiteDelegate* delegate_ = nullptr;
};

TEST_F(DelegateGlue, ClaimsAndRunsTheNode) {
  FakeGraph g;
  ASSERT_EQ(g.Apply(delegate_), kTfLiteOk) << g.errors_;
  EXPECT_EQ(g.replaced_, std::vector<int>{0});
  EXPECT_EQ(g.delegate_reg_.builtin_code, kTfLiteBuiltinDelegate);
  EXPECT_STREQ(g.delegate_reg_.custom_name, "TtqDelegate");
  EXPECT_TRUE(delegate_->flags & kTfLiteDelegateFlagsAllowDynamicTensors);
  const std::vector<float> expected = g.Expected();
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(g.output_[i], expected[i], 1e-5);
  ASSERT_EQ(TfLiteTtqDelegateNumDelegatedNodes(delegate_), 1);
  int node = -1;
  const char* op = nullptr;
  const char* kernel = nullptr;
  ASSERT_EQ(TfLiteTtqDelegateGetDelegatedNode(delegate_, 0, &node, &op, &kernel), 0);
  EXPECT_EQ(node, 0);
  EXPECT_STREQ(op, "TTQ_FULLY_CONNECTED");
  EXPECT_STRNE(kernel, "");
  EXPECT_EQ(TfLiteTtqDelegateGetDelegatedNode(delegate_, 1, &node, &op, &kernel), -1);
  // The node was invoked once: its steady-clock span is recorded (ttq_keras.op_profile).
  int64_t start = 0, end = 0;
  ASSERT_EQ(TfLiteTtqDelegateGetNodeTiming(delegate_, 0, &start, &end), 0);
  EXPECT_GT(start, 0);
  EXPECT_LE(start, end);
  EXPECT_EQ(TfLiteTtqDelegateGetNodeTiming(delegate_, 1, &start, &end), -1);
  EXPECT_EQ(TfLiteTtqDelegateGetNodeTiming(nullptr, 0, &start, &end), -1);
}

TEST_F(DelegateGlue, ResizesTheOutput) {
  FakeGraph g;
  std::free(g.tensors_[5].dims);
  g.tensors_[5].dims = MakeDims({1});
  ASSERT_EQ(g.Apply(delegate_), kTfLiteOk) << g.errors_;
  ASSERT_EQ(g.tensors_[5].dims->size, 2);
  EXPECT_EQ(g.tensors_[5].dims->data[0], 2);
  EXPECT_EQ(g.tensors_[5].dims->data[1], 3);
}

TEST_F(DelegateGlue, FastModeIsClose) {
  TfLiteTtqDelegateOptions options = TfLiteTtqDelegateOptionsDefault();
  options.mode = kTfLiteTtqModeFast;
  TfLiteDelegate* fast = TfLiteTtqDelegateCreate(&options);
  FakeGraph g;
  ASSERT_EQ(g.Apply(fast), kTfLiteOk) << g.errors_;
  const std::vector<float> expected = g.Expected();
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_NEAR(g.output_[i], expected[i], 0.1);
  TfLiteTtqDelegateDelete(fast);
}

TEST_F(DelegateGlue, RejectsCodeByteAbove242) {
  FakeGraph g;
  g.codes_[3] = 243;
  ExpectPrepareError(&g, "codes (tensor 1 'codes'): code byte 1 of row 1 is 243");
}

TEST_F(DelegateGlue, RejectsNonZeroPaddingTrit) {
  FakeGraph g;
  g.codes_[1] += 81 * 1;  // row 0, tap 9 (K = 6, so taps 6..9 are padding)
  ExpectPrepareError(&g, "non-zero padding trit at tap 9");
}

TEST_F(DelegateGlue, RejectsWrongCodesShape) {
  FakeGraph g;
  std::free(g.tensors_[1].dims);
  g.tensors_[1].dims = MakeDims({3, 3});
  ExpectPrepareError(&g, "has shape [3, 3]; expected [3, 2] = [C_out, ceil(K / 5)] with K = 6");
}

TEST_F(DelegateGlue, RejectsShortBuffer) {
  FakeGraph g;
  g.tensors_[4].bytes = 8;
  ExpectPrepareError(&g, "bias (tensor 4 'bias') has a 8-byte buffer; its shape needs 12 bytes");
}

TEST_F(DelegateGlue, RejectsNonConstantWeights) {
  FakeGraph g;
  g.tensors_[2].allocation_type = kTfLiteArenaRw;
  ExpectPrepareError(&g, "pos_scales (tensor 2 'pos') must be a constant tensor");
}

TEST_F(DelegateGlue, RejectsWrongDtype) {
  FakeGraph g;
  g.tensors_[1].type = kTfLiteInt8;
  ExpectPrepareError(&g, "codes (tensor 1 'codes') has dtype int8; expected uint8");
}

TEST_F(DelegateGlue, RejectsUnknownVersion) {
  FakeGraph g;
  g.options_ = testing::OptionsBytes("fc_version_2");
  ExpectPrepareError(&g, "unsupported format version 2");
}

TEST_F(DelegateGlue, RejectsTruncatedOptions) {
  FakeGraph g;
  g.options_.resize(g.options_.size() - 3);
  ExpectPrepareError(&g, "custom options: malformed FlexBuffer");
}

TEST_F(DelegateGlue, RejectsInputNotMultipleOfInFeaturesInKernelPrepare) {
  FakeGraph g;
  std::free(g.tensors_[0].dims);
  g.tensors_[0].dims = MakeDims({1, 7});
  EXPECT_EQ(g.Apply(delegate_), kTfLiteError);
  EXPECT_EQ(g.replaced_, std::vector<int>{0});  // claimed; the shape is checked at Prepare
  EXPECT_NE(g.errors_.find("TTQ delegate: node 0 (TTQ_FULLY_CONNECTED): input (tensor 0 'x'): "
                           "input shape [1, 7] has 7 elements, not a multiple of in_features = 6"),
            std::string::npos)
      << g.errors_;
}

TEST_F(DelegateGlue, RejectsMissingInput) {
  FakeGraph g;
  g.node_.inputs->size = 4;
  ExpectPrepareError(&g, "expected 5 inputs");
}

std::string g_plugin_error;
void CaptureError(const char* message) { g_plugin_error = message; }

TEST(Plugin, ParsesOptions) {
  const char* keys[] = {"mode", "num_threads"};
  const char* values[] = {"fast", "2"};
  TfLiteDelegate* d = tflite_plugin_create_delegate(keys, values, 2, CaptureError);
  ASSERT_NE(d, nullptr);
  tflite_plugin_destroy_delegate(d);

  const char* bad_values[] = {"fastest", "2"};
  EXPECT_EQ(tflite_plugin_create_delegate(keys, bad_values, 2, CaptureError), nullptr);
  EXPECT_NE(g_plugin_error.find("'mode' must be 'exact' or 'fast'; got 'fastest'"),
            std::string::npos);
  const char* bad_threads[] = {"exact", "0"};
  EXPECT_EQ(tflite_plugin_create_delegate(keys, bad_threads, 2, CaptureError), nullptr);
  EXPECT_NE(g_plugin_error.find("'num_threads'"), std::string::npos);
  const char* unknown_keys[] = {"modes"};
  EXPECT_EQ(tflite_plugin_create_delegate(unknown_keys, values, 1, CaptureError), nullptr);
  EXPECT_NE(g_plugin_error.find("unknown option 'modes'"), std::string::npos);
}

}  // namespace
}  // namespace ttq
