// A one-node TFLite graph on a hand-built TfLiteContext, for the structured fuzzer and the
// ThreadSanitizer run: it plays the runtime's part the way TFLite's Subgraph does
// (GetExecutionPlan -> delegate Prepare -> ReplaceNodeSubsetsWithDelegateKernels -> init ->
// prepare -> allocate the resized output -> invoke -> free), so the delegate's whole glue runs,
// including Prepare and Eval, on tensors whose every field the caller controls.
#ifndef TTQ_DELEGATE_FUZZ_ONE_OP_GRAPH_H_
#define TTQ_DELEGATE_FUZZ_ONE_OP_GRAPH_H_

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tensorflow/lite/builtin_ops.h"
#include "tensorflow/lite/c/common.h"

namespace ttq {
namespace fuzz {

inline TfLiteIntArray* NewDims(const std::vector<int>& dims) {
  auto* a = static_cast<TfLiteIntArray*>(
      std::malloc(sizeof(TfLiteIntArray) + sizeof(int) * (dims.size() + 1)));
  a->size = static_cast<int>(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) a->data[i] = dims[i];
  return a;
}

struct TensorSpec {
  TfLiteType type = kTfLiteFloat32;
  std::vector<int> dims;
  std::vector<uint8_t> data;  // constant data, or the activation's storage
  bool constant = false;      // kTfLiteMmapRo
  bool has_data = true;
  size_t bytes_override = static_cast<size_t>(-1);  // declared byte size; default data.size()
};

// kArenaFull: the delegate accepted the op but its output is above what this fake arena
// allocates (a runtime's clean allocation failure, not a delegate rejection).
enum class RunOutcome { kRejected, kArenaFull, kRan };

class OneOpGraph {
 public:
  // Largest output the fake arena allocates (the delegate bounds outputs at 1 GiB; the fuzzer
  // keeps inputs small, so a bigger output than this means the bound is broken).
  static constexpr size_t kMaxOutputBytes = size_t{1} << 30;
  // What this fake arena allocates at most (LiteRT's fuzzers cap live memory at 64 MiB too).
  static constexpr size_t kArenaBytes = size_t{64} << 20;

  OneOpGraph(std::vector<TensorSpec> tensors, std::vector<int> inputs, std::vector<int> outputs,
             const char* custom_name, std::vector<uint8_t> options)
      : specs_(std::move(tensors)), options_(std::move(options)), custom_name_(custom_name) {
    tensors_.resize(specs_.size());
    names_.reserve(specs_.size());  // t.name points into it
    std::memset(tensors_.data(), 0, sizeof(TfLiteTensor) * tensors_.size());
    for (size_t i = 0; i < specs_.size(); ++i) {
      TensorSpec& s = specs_[i];
      TfLiteTensor& t = tensors_[i];
      t.type = s.type;
      t.dims = NewDims(s.dims);
      t.data.raw = s.has_data && !s.data.empty() ? reinterpret_cast<char*>(s.data.data()) : nullptr;
      t.bytes = s.bytes_override != static_cast<size_t>(-1) ? s.bytes_override : s.data.size();
      t.allocation_type = s.constant ? kTfLiteMmapRo : kTfLiteArenaRw;
      names_.push_back("t" + std::to_string(i));
      t.name = names_.back().c_str();
    }
    std::memset(&node_, 0, sizeof(node_));
    node_.inputs = NewDims(inputs);
    node_.outputs = NewDims(outputs);
    node_.custom_initial_data = options_.empty() ? nullptr : options_.data();
    node_.custom_initial_data_size = static_cast<int>(options_.size());
    std::memset(&reg_, 0, sizeof(reg_));
    reg_.builtin_code = kTfLiteBuiltinCustom;
    reg_.custom_name = custom_name_;
    plan_ = NewDims({0});

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
      OneOpGraph* self = Self(c);
      self->delegate_reg_ = reg;
      self->replaced_.assign(nodes->data, nodes->data + nodes->size);
      self->kernel_delegate_ = delegate;
      return kTfLiteOk;
    };
    context_.ResizeTensor = [](TfLiteContext*, TfLiteTensor* t, TfLiteIntArray* dims) {
      std::free(t->dims);
      t->dims = dims;
      return kTfLiteOk;
    };
    context_.ReportError = &OneOpGraph::ReportError;
  }

  ~OneOpGraph() {
    for (auto& t : tensors_) std::free(t.dims);
    std::free(node_.inputs);
    std::free(node_.outputs);
    std::free(plan_);
  }
  OneOpGraph(const OneOpGraph&) = delete;
  OneOpGraph& operator=(const OneOpGraph&) = delete;

  // Applies `delegate` and, when it claims the node, runs init/prepare/invoke like a runtime.
  // The output tensor (node output 0) is reallocated after prepare to its resized shape.
  RunOutcome Run(TfLiteDelegate* delegate) {
    if (delegate->Prepare(&context_, delegate) != kTfLiteOk) return RunOutcome::kRejected;
    if (replaced_.empty()) return RunOutcome::kRejected;  // not claimed
    if (replaced_.size() != 1 || replaced_[0] != 0) Die("delegate replaced unexpected nodes");
    TfLiteIntArray* nodes = NewDims({replaced_[0]});
    TfLiteDelegateParams params{kernel_delegate_, nodes, node_.inputs, node_.outputs};
    void* user_data = delegate_reg_.init(&context_, reinterpret_cast<const char*>(&params), 0);
    std::free(nodes);
    TfLiteNode kernel_node;
    std::memset(&kernel_node, 0, sizeof(kernel_node));
    kernel_node.user_data = user_data;
    kernel_node.inputs = node_.inputs;
    kernel_node.outputs = node_.outputs;
    RunOutcome outcome = RunOutcome::kRejected;
    if (delegate_reg_.prepare(&context_, &kernel_node) == kTfLiteOk) {
      if (!AllocateOutput()) {
        outcome = RunOutcome::kArenaFull;
      } else if (delegate_reg_.invoke(&context_, &kernel_node) == kTfLiteOk) {
        outcome = RunOutcome::kRan;
      }
    }
    delegate_reg_.free(&context_, user_data);
    return outcome;
  }

  const std::vector<float>& output() const { return output_; }
  const TfLiteTensor& tensor(int i) const { return tensors_[i]; }
  const std::string& errors() const { return errors_; }

 private:
  static OneOpGraph* Self(TfLiteContext* c) { return static_cast<OneOpGraph*>(c->impl_); }
  static void Die(const char* what) {
    std::fprintf(stderr, "one_op_graph: %s\n", what);
    std::abort();
  }
  static void ReportError(TfLiteContext* c, const char* format, ...) {
    char buffer[2048];
    va_list args;
    va_start(args, format);
    std::vsnprintf(buffer, sizeof(buffer), format, args);
    va_end(args);
    Self(c)->errors_ += buffer;
  }
  // Like the runtime's arena: false (a clean allocation failure) above kArenaBytes.
  bool AllocateOutput() {
    const int out = node_.outputs->data[0];
    TfLiteTensor& t = tensors_[out];
    size_t n = 1;
    for (int i = 0; i < t.dims->size; ++i) {
      if (t.dims->data[i] < 0) Die("delegate resized the output to a negative dimension");
      n *= static_cast<size_t>(t.dims->data[i]);
      if (n * sizeof(float) > kMaxOutputBytes) Die("delegate accepted an output above 1 GiB");
    }
    if (n * sizeof(float) > kArenaBytes) return false;
    output_.assign(n, -12345.0f);
    t.data.raw = n ? reinterpret_cast<char*>(output_.data()) : nullptr;
    t.bytes = n * sizeof(float);
    return true;
  }

  std::vector<TensorSpec> specs_;
  std::vector<uint8_t> options_;
  const char* custom_name_;
  std::vector<std::string> names_;
  std::vector<TfLiteTensor> tensors_;
  TfLiteNode node_;
  TfLiteRegistration reg_;
  TfLiteIntArray* plan_;
  TfLiteContext context_;
  TfLiteRegistration delegate_reg_{};
  TfLiteDelegate* kernel_delegate_ = nullptr;
  std::vector<int> replaced_;
  std::vector<float> output_;
  std::string errors_;
};

}  // namespace fuzz
}  // namespace ttq

#endif  // TTQ_DELEGATE_FUZZ_ONE_OP_GRAPH_H_
