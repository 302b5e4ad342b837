// The TFLite glue: a raw TfLiteDelegate (written against common.h only; no SimpleDelegate) that
// claims the CUSTOM ops TTQ_CONV_2D, TTQ_DEPTHWISE_CONV_2D and TTQ_FULLY_CONNECTED.
//
// Flow:
//   DelegatePrepare (ModifyGraphWithDelegate): walk the execution plan, validate every TTQ node
//     against docs/format.md section 5 (options, dtypes, constant weights and their shapes, code
//     bytes) and fail with "TTQ delegate: node N (OP): problem" on the first bad one. Then
//     replace each TTQ node by its own delegate kernel node (one
//     ReplaceNodeSubsetsWithDelegateKernels call per node, so the runtime keeps allocating
//     every tensor between two TTQ ops). A convolution fed by a per-channel MUL -> ADD (an
//     unfolded BatchNormalization, input_affine.h) takes those two nodes into its partition.
//   KernelInit: parse the options again, unpack the trits and create the kernel (CreateKernel
//     picks the best implementation for the CPU and mode).
//   KernelPrepare (AllocateTensors): check the input shape (section 5, last item; shapes are
//     known only now) and resize the output. Runs again after every input resize.
//   KernelInvoke: apply the fused affine map if any, then run the kernel.
//
// Why kTfLiteDelegateFlagsAllowDynamicTensors: without it the runtime first prepares the whole
// original graph to look for dynamic tensors, which fails on the unresolved TTQ custom ops
// before this delegate ever sees them.
//
// ABI: built against the TFLite 2.16.1 headers and loaded by newer runtimes (LiteRT 2.3.0, TF
// 2.21). The structs are append-only, so this code reads only fields that 2.16.1 has; the
// TfLiteDelegate we hand out is followed by zeroed bytes so that a runtime reading a newer,
// longer struct finds zeros (the defaults) rather than garbage.
#include "ttq_delegate/ttq_delegate.h"

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "core/geometry.h"
#include "core/kernel.h"
#include "core/packing.h"
#include "core/thread_choice.h"
#include "core/thread_pool.h"
#include "input_affine.h"
#include "op_options.h"
#include "tensorflow/lite/builtin_ops.h"
#include "tensorflow/lite/c/common.h"

namespace ttq {
namespace {

constexpr char kDelegateKernelName[] = "TtqDelegate";
constexpr int kNumInputs = 5;
constexpr int kInput = 0, kCodes = 1, kPosScales = 2, kNegScales = 3, kBias = 4;
constexpr const char* kInputNames[kNumInputs] = {"input", "codes", "pos_scales", "neg_scales",
                                                 "bias"};

struct NodeTiming {
  int64_t start_ns = 0;
  int64_t end_ns = 0;
  int threads = 0;  // threads the last Invoke ran on (ThreadChoice: 1 or num_threads)
};

// TTQ_NO_THREAD_CHOICE=1: every op always runs on the pool (core/thread_choice.h), e.g. to
// measure the pool alone.
bool ThreadChoiceDisabled() {
  const char* env = std::getenv("TTQ_NO_THREAD_CHOICE");
  return env != nullptr && env[0] == '1';
}

// Whether one graph's TTQ ops run on the pool or on the calling thread alone. One choice for
// all of them, made by timing whole invokes from the start of the first TTQ op to the end of the
// last (the builtin ops between them included): per op, a worker asleep after a run of
// caller-only ops took 29 us to wake for the next pool op (10 us of work), and the pool's
// spinning slowed the builtin ADDs between convs from 2.5 to 6 us (2-vCPU Xeon VM).
struct GraphThreads {
  core::ThreadChoice choice{!ThreadChoiceDisabled()};
  core::ThreadPool* current = nullptr;  // the choice of the invoke in progress
  std::chrono::steady_clock::time_point invoke_start;
};

struct NodeRecord {
  const TfLiteContext* graph;  // each subgraph has its own context
  int node_index;
  std::string op_name;
  std::string kernel_name;
  // Steady-clock (CLOCK_MONOTONIC) nanoseconds of the node's last Invoke; shared with its
  // OpState, which writes them (two clock reads per op, for per-op profiles).
  std::shared_ptr<NodeTiming> timing = std::make_shared<NodeTiming>();
  std::vector<int> fused_nodes;               // builtin nodes run inside this node's kernel
  std::shared_ptr<const InputAffine> affine;  // their parameters (null if none)
};

class Delegate {
 public:
  explicit Delegate(const TfLiteTtqDelegateOptions& options) : options_(options) {
    std::memset(&padded_, 0, sizeof(padded_));
    padded_.delegate.data_ = this;
    padded_.delegate.Prepare = &Delegate::Prepare;
    padded_.delegate.flags = kTfLiteDelegateFlagsAllowDynamicTensors;
    if (options.num_threads > 1) pool_.reset(new core::ThreadPool(options.num_threads));
  }

  static Delegate* From(const TfLiteDelegate* d) { return static_cast<Delegate*>(d->data_); }
  TfLiteDelegate* tflite_delegate() { return &padded_.delegate; }

  core::NumericMode mode() const {
    return options_.mode == kTfLiteTtqModeFast ? core::NumericMode::kFastInt8
                                               : core::NumericMode::kExact;
  }
  core::ThreadPool* pool() const { return pool_.get(); }

  const std::vector<NodeRecord>& records() const { return records_; }
  // Records the kernel chosen for a node; returns the node's timing slot (nullptr if unknown).
  std::shared_ptr<NodeTiming> SetKernelName(const TfLiteContext* graph, int node_index,
                                            const char* name) {
    std::shared_ptr<NodeTiming> timing;
    for (NodeRecord& r : records_) {
      if (r.graph == graph && r.node_index == node_index) {
        r.kernel_name = name;
        timing = r.timing;
      }
    }
    return timing;
  }
  // Whether `node_index` is the first / the last TTQ node the runtime runs in `graph` (it runs a
  // graph's nodes in index order).
  void PositionInGraph(const TfLiteContext* graph, int node_index, bool* first, bool* last) const {
    *first = *last = true;
    for (const NodeRecord& r : records_) {
      if (r.graph != graph) continue;
      if (r.node_index < node_index) *first = false;
      if (r.node_index > node_index) *last = false;
    }
  }
  // The thread choice shared by the TTQ nodes of `graph`.
  std::shared_ptr<GraphThreads> ThreadsOf(const TfLiteContext* graph) {
    std::shared_ptr<GraphThreads>& g = graph_threads_[graph];
    if (!g) g = std::make_shared<GraphThreads>();
    return g;
  }
  // The affine map fused into a node's partition (null if none).
  std::shared_ptr<const InputAffine> FusedAffine(const TfLiteContext* graph, int node_index) const {
    for (const NodeRecord& r : records_) {
      if (r.graph == graph && r.node_index == node_index) return r.affine;
    }
    return nullptr;
  }
  // Drops the records of `graph` (it is being delegated again).
  void ForgetGraph(const TfLiteContext* graph) {
    std::vector<NodeRecord> kept;
    for (NodeRecord& r : records_) {
      if (r.graph != graph) kept.push_back(std::move(r));
    }
    records_.swap(kept);
    graph_threads_.erase(graph);
  }

 private:
  static TfLiteStatus Prepare(TfLiteContext* context, TfLiteDelegate* delegate);

  struct Padded {
    TfLiteDelegate delegate;
    unsigned char reserved[256];  // zeros for fields a newer runtime may have appended
  } padded_;
  const TfLiteTtqDelegateOptions options_;
  std::unique_ptr<core::ThreadPool> pool_;  // null when num_threads is 1
  std::vector<NodeRecord> records_;
  std::map<const TfLiteContext*, std::shared_ptr<GraphThreads>> graph_threads_;
};

// ---- helpers -------------------------------------------------------------------------------

// TfLiteIntArrayCreate is not exported by every runtime (LiteRT 2.3.0 exports no TfLite*
// symbol); the runtime frees these arrays with free(), so malloc is the matching allocator.
TfLiteIntArray* NewIntArray(int size) {
  void* p = std::malloc(sizeof(TfLiteIntArray) + sizeof(int) * static_cast<size_t>(size));
  if (p == nullptr) return nullptr;
  auto* a = static_cast<TfLiteIntArray*>(p);
  a->size = size;
  return a;
}

std::string ShapeString(const TfLiteIntArray* dims) {
  if (dims == nullptr) return "[unknown]";
  std::string s = "[";
  for (int i = 0; i < dims->size; ++i) {
    if (i) s += ", ";
    s += std::to_string(dims->data[i]);
  }
  return s + "]";
}

std::string TypeName(TfLiteType type) {
  switch (type) {
    case kTfLiteFloat32:
      return "float32";
    case kTfLiteUInt8:
      return "uint8";
    case kTfLiteInt8:
      return "int8";
    case kTfLiteInt32:
      return "int32";
    case kTfLiteFloat16:
      return "float16";
    default:
      return "type " + std::to_string(static_cast<int>(type));
  }
}

// A tensor's index and name for error messages. Bytes outside printable ASCII are written as
// \xNN: a name from a corrupted file may not be UTF-8, and the Python bindings then failed to
// decode the whole message (UnicodeDecodeError instead of the delegate's error).
std::string TensorLabel(const TfLiteContext* context, int index) {
  const TfLiteTensor& t = context->tensors[index];
  std::string s = "tensor " + std::to_string(index);
  if (t.name == nullptr || t.name[0] == '\0') return s;
  s += " '";
  static const char kHex[] = "0123456789abcdef";
  for (const char* c = t.name; *c != '\0'; ++c) {
    const unsigned char b = static_cast<unsigned char>(*c);
    if (b >= 0x20 && b < 0x7f) {
      s += static_cast<char>(b);
    } else {
      s += "\\x";
      s += kHex[b >> 4];
      s += kHex[b & 15];
    }
  }
  return s + "'";
}

bool DimsEqual(const TfLiteIntArray* dims, std::initializer_list<int64_t> expected) {
  if (dims == nullptr || dims->size != static_cast<int>(expected.size())) return false;
  int i = 0;
  for (int64_t e : expected) {
    if (dims->data[i++] != e) return false;
  }
  return true;
}

// Largest activation tensor (input or output of a TTQ op) the delegate accepts, in elements:
// 2^28 float32 = 1 GiB (docs/format.md section 5, "memory bounds"). It keeps every element
// index in int32 and stops a file that declares a huge batch or image from making the runtime
// allocate more than that for it.
constexpr int64_t kMaxActivationElements = int64_t{1} << 28;

// Element count of `dims`, or -1 when a dimension is negative or the count exceeds
// kMaxActivationElements (checked per factor, so it never overflows).
int64_t NumElements(const TfLiteIntArray* dims) {
  int64_t n = 1;
  for (int i = 0; i < dims->size; ++i) {
    const int64_t d = dims->data[i];
    if (d < 0) return -1;
    if (d != 0 && n > kMaxActivationElements / d) return -1;
    n *= d;
  }
  return n > kMaxActivationElements ? -1 : n;
}

std::string SizeError(const char* what, const TfLiteIntArray* dims) {
  return std::string(what) + " shape " + ShapeString(dims) +
         " has a negative dimension or more than 2^28 elements (the delegate's bound on one "
         "activation tensor, docs/format.md section 5)";
}

// A validated node: its options and tensor indices.
struct NodeInfo {
  core::OpKind kind;
  TtqOpOptions options;
  int tensors[kNumInputs];
  int output;
};

// The output of a conv / depthwise op must stay within kMaxActivationElements too.
bool CheckConvOutputSize(const core::ConvShape& shape, int out_channels, std::string* error) {
  int64_t n = 1;
  for (int64_t d : {int64_t{shape.batch}, int64_t{shape.out_height}, int64_t{shape.out_width},
                    int64_t{out_channels}}) {
    if (d != 0 && n > kMaxActivationElements / d) {
      n = kMaxActivationElements + 1;
      break;
    }
    n *= d;
  }
  if (n > kMaxActivationElements) {
    *error = "the output [" + std::to_string(shape.batch) + ", " +
             std::to_string(shape.out_height) + ", " + std::to_string(shape.out_width) + ", " +
             std::to_string(out_channels) +
             "] would have more than 2^28 elements (the delegate's bound on one activation "
             "tensor, docs/format.md section 5)";
    return false;
  }
  return true;
}

// FC output: rows * out_features within kMaxActivationElements.
bool CheckFcOutputSize(int64_t rows, int out_features, std::string* error) {
  if (rows != 0 && out_features > kMaxActivationElements / rows) {
    *error = "the output [" + std::to_string(rows) + ", " + std::to_string(out_features) +
             "] would have more than 2^28 elements (the delegate's bound on one activation "
             "tensor, docs/format.md section 5)";
    return false;
  }
  return true;
}

// Checks the input activation's current shape (section 5, last item).
bool CheckInputShape(const NodeInfo& info, const TfLiteIntArray* dims, std::string* error) {
  const core::OpParams& p = info.options.params;
  const int64_t elements = NumElements(dims);
  if (elements < 0) {
    *error = SizeError("input", dims);
    return false;
  }
  if (info.kind == core::OpKind::kFullyConnected) {
    if (dims->size < 1 || elements % p.in_channels != 0) {
      *error = "input shape " + ShapeString(dims) + " has " + std::to_string(elements) +
               " elements, not a multiple of in_features = " + std::to_string(p.in_channels);
      return false;
    }
    if (info.options.keep_num_dims && dims->data[dims->size - 1] != p.in_channels) {
      *error = "input shape " + ShapeString(dims) +
               " must end in in_features = " + std::to_string(p.in_channels) +
               " when keep_num_dims is true";
      return false;
    }
    return CheckFcOutputSize(elements / p.in_channels, p.out_channels, error);
  }
  if (dims->size != 4) {
    *error = "input must be 4-D NHWC; got shape " + ShapeString(dims);
    return false;
  }
  if (dims->data[3] != p.in_channels) {
    *error = "input shape " + ShapeString(dims) + " has " + std::to_string(dims->data[3]) +
             " channels; expected in_channels = " + std::to_string(p.in_channels);
    return false;
  }
  core::ConvShape shape;
  if (!core::ComputeConvShape(p, dims->data[0], dims->data[1], dims->data[2], &shape, error)) {
    return false;
  }
  return CheckConvOutputSize(shape, p.out_channels, error);
}

// Validates node `node` (docs/format.md section 5). When `trits` is not null, also unpacks the
// codes into it. Input shapes are checked only when `check_input_shape` is set and known.
bool CheckNode(const TfLiteContext* context, const TfLiteNode* node, core::OpKind kind,
               bool check_input_shape, NodeInfo* info, std::vector<int8_t>* trits,
               std::string* error) {
  info->kind = kind;
  if (node->inputs == nullptr || node->outputs == nullptr || node->inputs->size != kNumInputs ||
      node->outputs->size != 1) {
    *error = "expected 5 inputs (input, codes, pos_scales, neg_scales, bias) and 1 output; got " +
             std::to_string(node->inputs ? node->inputs->size : 0) + " inputs and " +
             std::to_string(node->outputs ? node->outputs->size : 0) + " outputs";
    return false;
  }
  for (int i = 0; i < kNumInputs; ++i) {
    const int t = node->inputs->data[i];
    if (t < 0 || static_cast<size_t>(t) >= context->tensors_size) {
      *error = std::string("input ") + std::to_string(i) + " (" + kInputNames[i] + ") is missing";
      return false;
    }
    info->tensors[i] = t;
  }
  info->output = node->outputs->data[0];
  if (info->output < 0 || static_cast<size_t>(info->output) >= context->tensors_size) {
    *error = "the output tensor is missing";
    return false;
  }
  // The output must be its own tensor: resizing it would otherwise resize an input under the
  // kernel (found by fuzz_one_op: a heap overflow in the fast-mode quantization).
  for (int i = 0; i < kNumInputs; ++i) {
    if (info->tensors[i] == info->output) {
      *error = std::string("the output tensor ") + std::to_string(info->output) +
               " is also input " + std::to_string(i) + " (" + kInputNames[i] + ")";
      return false;
    }
  }

  const size_t options_size =
      node->custom_initial_data_size > 0 ? static_cast<size_t>(node->custom_initial_data_size) : 0;
  if (!ParseOpOptions(kind, static_cast<const uint8_t*>(node->custom_initial_data), options_size,
                      &info->options, error)) {
    *error = "custom options: " + *error;
    return false;
  }
  const core::OpParams& p = info->options.params;

  // Dtypes.
  static constexpr TfLiteType kTypes[kNumInputs] = {kTfLiteFloat32, kTfLiteUInt8, kTfLiteFloat32,
                                                    kTfLiteFloat32, kTfLiteFloat32};
  for (int i = 0; i < kNumInputs; ++i) {
    const TfLiteTensor& t = context->tensors[info->tensors[i]];
    if (t.type != kTypes[i]) {
      *error = std::string(kInputNames[i]) + " (" + TensorLabel(context, info->tensors[i]) +
               ") has dtype " + TypeName(t.type) + "; expected " + TypeName(kTypes[i]);
      return false;
    }
  }
  if (context->tensors[info->output].type != kTfLiteFloat32) {
    *error = "output (" + TensorLabel(context, info->output) + ") has dtype " +
             TypeName(context->tensors[info->output].type) + "; expected float32";
    return false;
  }

  // Constant weights with the shapes of section 2 and buffers long enough for them.
  const int64_t k = core::RowLength(p);
  const int64_t row_bytes = core::PackedRowBytes(k);
  const int64_t c_out = p.out_channels;
  for (int i = kCodes; i <= kBias; ++i) {
    const TfLiteTensor& t = context->tensors[info->tensors[i]];
    const std::string label =
        std::string(kInputNames[i]) + " (" + TensorLabel(context, info->tensors[i]) + ")";
    if (t.allocation_type != kTfLiteMmapRo || t.data.raw == nullptr) {
      *error = label + " must be a constant tensor with a buffer";
      return false;
    }
    const bool is_codes = i == kCodes;
    const bool shape_ok =
        is_codes ? DimsEqual(t.dims, {c_out, row_bytes}) : DimsEqual(t.dims, {c_out});
    if (!shape_ok) {
      *error = label + " has shape " + ShapeString(t.dims) + "; expected " +
               (is_codes ? "[" + std::to_string(c_out) + ", " + std::to_string(row_bytes) +
                               "] = [C_out, ceil(K / 5)] with K = " + std::to_string(k)
                         : "[" + std::to_string(c_out) + "] = [C_out]");
      return false;
    }
    const int64_t needed = is_codes ? c_out * row_bytes : c_out * int64_t{sizeof(float)};
    if (static_cast<int64_t>(t.bytes) < needed) {
      *error = label + " has a " + std::to_string(t.bytes) + "-byte buffer; its shape needs " +
               std::to_string(needed) + " bytes";
      return false;
    }
  }
  // Scales and bias must be finite: a NaN or Inf there is a corrupt file, not a model.
  for (int i = kPosScales; i <= kBias; ++i) {
    const float* v = context->tensors[info->tensors[i]].data.f;
    for (int64_t c = 0; c < c_out; ++c) {
      if (!std::isfinite(v[c])) {
        *error = std::string(kInputNames[i]) + " (" + TensorLabel(context, info->tensors[i]) +
                 ") holds a non-finite value at channel " + std::to_string(c);
        return false;
      }
    }
  }
  // The activation shapes the file declares must be within the memory bound (they are
  // placeholders where dynamic, but never larger than what will run unless resized).
  for (int t : {info->tensors[kInput], info->output}) {
    const TfLiteIntArray* dims = context->tensors[t].dims;
    if (dims != nullptr && NumElements(dims) < 0) {
      *error = SizeError(t == info->output ? "output" : "input", dims) + " (" +
               TensorLabel(context, t) + ")";
      return false;
    }
  }
  const uint8_t* codes = context->tensors[info->tensors[kCodes]].data.uint8;
  std::string code_error;
  const bool codes_ok = trits != nullptr
                            ? (trits->resize(static_cast<size_t>(c_out * k)),
                               core::UnpackTrits(codes, c_out, k, trits->data(), &code_error))
                            : core::ValidatePackedTrits(codes, c_out, k, &code_error);
  if (!codes_ok) {
    *error = "codes (" + TensorLabel(context, info->tensors[kCodes]) + "): " + code_error;
    return false;
  }

  if (check_input_shape) {
    const TfLiteIntArray* dims = context->tensors[info->tensors[kInput]].dims;
    if (dims != nullptr && dims->size > 0 && !CheckInputShape(*info, dims, error)) {
      *error = "input (" + TensorLabel(context, info->tensors[kInput]) + "): " + *error;
      return false;
    }
  }
  return true;
}

void ReportNodeError(TfLiteContext* context, int node_index, core::OpKind kind,
                     const std::string& error) {
  context->ReportError(context, "TTQ delegate: node %d (%s): %s.\n", node_index, OpName(kind),
                       error.c_str());
}

// ---- the delegate kernel (one per TTQ node) --------------------------------------------------

struct OpState {
  int node_index = -1;
  NodeInfo info;
  std::unique_ptr<core::TernaryKernel> kernel;
  core::ThreadPool* pool = nullptr;
  // The graph's choice between `pool` and the calling thread; its first TTQ node makes it for
  // each invoke, its last one times the invoke.
  std::shared_ptr<GraphThreads> graph_threads;
  bool first_in_graph = true, last_in_graph = true;
  std::shared_ptr<NodeTiming> timing;  // may be null
  std::string error;                   // set when Init failed; reported by Prepare
  // Geometry of the next Invoke, set by Prepare.
  core::ConvShape conv_shape;
  int fc_rows = 0;
  // The fused input affine map (null if none), whether its intermediate tensors are partition
  // outputs the kernel must also write, and its result when they are not.
  std::shared_ptr<const InputAffine> affine;
  bool write_mul_out = false, write_add_out = false;
  std::vector<float> affine_out;

  int input_tensor() const { return affine ? affine->input : info.tensors[kInput]; }
};

void* KernelInit(TfLiteContext* context, const char* buffer, size_t /*length*/) {
  auto* state = new (std::nothrow) OpState;
  if (state == nullptr) return nullptr;
  const auto* params = reinterpret_cast<const TfLiteDelegateParams*>(buffer);
  if (params == nullptr || params->nodes_to_replace == nullptr ||
      params->nodes_to_replace->size < 1 || params->output_tensors == nullptr) {
    state->error = "internal error: no node for the delegate kernel";
    return state;
  }
  Delegate* delegate = Delegate::From(params->delegate);
  // The partition is one TTQ node, plus the MUL and ADD of its fused input affine map.
  TfLiteNode* node = nullptr;
  core::OpKind kind = core::OpKind::kConv2D;
  for (int i = 0; i < params->nodes_to_replace->size && state->node_index < 0; ++i) {
    TfLiteNode* n = nullptr;
    TfLiteRegistration* r = nullptr;
    if (context->GetNodeAndRegistration(context, params->nodes_to_replace->data[i], &n, &r) ==
            kTfLiteOk &&
        r->builtin_code == kTfLiteBuiltinCustom && OpKindFromName(r->custom_name, &kind)) {
      state->node_index = params->nodes_to_replace->data[i];
      node = n;
    }
  }
  if (node == nullptr) {
    state->error = "internal error: the delegate kernel has no TTQ node";
    return state;
  }
  state->affine = delegate->FusedAffine(context, state->node_index);
  const int expected_nodes = state->affine ? 3 : 1;
  if (params->nodes_to_replace->size != expected_nodes) {
    state->error = "internal error: expected " + std::to_string(expected_nodes) +
                   " nodes in the delegate kernel, got " +
                   std::to_string(params->nodes_to_replace->size);
    return state;
  }
  std::vector<int8_t> trits;
  if (!CheckNode(context, node, kind, /*check_input_shape=*/false, &state->info, &trits,
                 &state->error)) {
    return state;
  }
  core::TernaryWeights weights;
  weights.trits = trits.data();
  weights.pos_scales = context->tensors[state->info.tensors[kPosScales]].data.f;
  weights.neg_scales = context->tensors[state->info.tensors[kNegScales]].data.f;
  weights.bias = context->tensors[state->info.tensors[kBias]].data.f;
  state->kernel = core::CreateKernel(state->info.options.params, weights, delegate->mode());
  if (!state->kernel) {
    state->error = "internal error: no kernel for this op";
    return state;
  }
  state->pool = delegate->pool();
  state->timing = delegate->SetKernelName(context, state->node_index, state->kernel->Name());
  state->graph_threads = delegate->ThreadsOf(context);
  delegate->PositionInGraph(context, state->node_index, &state->first_in_graph,
                            &state->last_in_graph);
  // Partition outputs: the op's output, and an intermediate of the affine map only where the
  // runtime needs it beyond the op (a graph output).
  for (int i = 0; i < params->output_tensors->size; ++i) {
    const int t = params->output_tensors->data[i];
    if (t == state->info.output) continue;
    if (state->affine && t == state->affine->mul_out) {
      state->write_mul_out = true;
    } else if (state->affine && t == state->affine->add_out) {
      state->write_add_out = true;
    } else {
      state->error = "internal error: unexpected partition output " + TensorLabel(context, t);
      return state;
    }
  }
  return state;
}

void KernelFree(TfLiteContext* /*context*/, void* buffer) { delete static_cast<OpState*>(buffer); }

TfLiteStatus KernelPrepare(TfLiteContext* context, TfLiteNode* node) {
  auto* state = static_cast<OpState*>(node->user_data);
  if (state == nullptr) {
    context->ReportError(context, "TTQ delegate: out of memory");
    return kTfLiteError;
  }
  const core::OpKind kind = state->info.kind;
  if (!state->error.empty()) {
    ReportNodeError(context, state->node_index, kind, state->error);
    return kTfLiteError;
  }
  const TfLiteTensor& input = context->tensors[state->input_tensor()];
  TfLiteTensor* output = &context->tensors[state->info.output];
  std::string error;
  if (input.dims == nullptr || !CheckInputShape(state->info, input.dims, &error)) {
    ReportNodeError(context, state->node_index, kind,
                    "input (" + TensorLabel(context, state->input_tensor()) + "): " + error);
    return kTfLiteError;
  }
  if (state->affine) {
    // The affine map keeps the shape (CheckInputShape required C_in channels, those of its
    // constants). Its intermediate tensors get that shape where they are partition outputs.
    for (int t : {state->write_mul_out ? state->affine->mul_out : -1,
                  state->write_add_out ? state->affine->add_out : -1}) {
      if (t < 0) continue;
      TfLiteTensor* tensor = &context->tensors[t];
      if (tensor->dims != nullptr && tensor->dims->size == input.dims->size &&
          std::memcmp(tensor->dims->data, input.dims->data, sizeof(int) * input.dims->size) == 0) {
        continue;
      }
      TfLiteIntArray* dims = NewIntArray(input.dims->size);
      if (dims == nullptr) return kTfLiteError;
      std::memcpy(dims->data, input.dims->data, sizeof(int) * input.dims->size);
      if (context->ResizeTensor(context, tensor, dims) != kTfLiteOk) return kTfLiteError;
    }
    if (!state->write_add_out) {
      state->affine_out.resize(static_cast<size_t>(NumElements(input.dims)));
    }
  }
  const core::OpParams& p = state->info.options.params;
  const TfLiteIntArray* in = input.dims;
  TfLiteIntArray* out;
  state->graph_threads->choice.Reset();  // a new shape may favour the other side
  if (kind == core::OpKind::kFullyConnected) {
    // CheckInputShape bounded the element count, so the row count fits in an int.
    state->fc_rows = static_cast<int>(NumElements(in) / p.in_channels);
    if (state->info.options.keep_num_dims) {
      out = NewIntArray(in->size);
      if (out == nullptr) return kTfLiteError;
      for (int i = 0; i < in->size; ++i) out->data[i] = in->data[i];
      out->data[in->size - 1] = p.out_channels;
    } else {
      out = NewIntArray(2);
      if (out == nullptr) return kTfLiteError;
      out->data[0] = state->fc_rows;
      out->data[1] = p.out_channels;
    }
  } else {
    if (!core::ComputeConvShape(p, in->data[0], in->data[1], in->data[2], &state->conv_shape,
                                &error)) {
      ReportNodeError(context, state->node_index, kind, error);
      return kTfLiteError;
    }
    out = NewIntArray(4);
    if (out == nullptr) return kTfLiteError;
    out->data[0] = state->conv_shape.batch;
    out->data[1] = state->conv_shape.out_height;
    out->data[2] = state->conv_shape.out_width;
    out->data[3] = p.out_channels;
  }
  if (output->dims != nullptr && output->dims->size == out->size &&
      std::memcmp(output->dims->data, out->data, sizeof(int) * out->size) == 0) {
    std::free(out);
    return kTfLiteOk;
  }
  return context->ResizeTensor(context, output, out);  // takes ownership of `out`
}

TfLiteStatus KernelInvoke(TfLiteContext* context, TfLiteNode* node) {
  auto* state = static_cast<OpState*>(node->user_data);
  GraphThreads& threads = *state->graph_threads;
  if (state->first_in_graph) {
    threads.current = threads.choice.Next(state->pool);
    threads.invoke_start = std::chrono::steady_clock::now();
  }
  const TfLiteTensor& input = context->tensors[state->input_tensor()];
  TfLiteTensor& output = context->tensors[state->info.output];
  if (output.bytes == 0) return kTfLiteOk;  // an empty batch
  float* mul_out = nullptr;
  float* add_out = nullptr;
  if (state->affine) {
    mul_out = state->write_mul_out ? context->tensors[state->affine->mul_out].data.f : nullptr;
    add_out = state->write_add_out ? context->tensors[state->affine->add_out].data.f
                                   : state->affine_out.data();
  }
  if (input.data.f == nullptr || output.data.f == nullptr ||
      (state->affine && (add_out == nullptr || (state->write_mul_out && mul_out == nullptr)))) {
    ReportNodeError(context, state->node_index, state->info.kind,
                    "input or output tensor has no data (was AllocateTensors called?)");
    return kTfLiteError;
  }
  const auto start = std::chrono::steady_clock::now();
  core::ThreadPool* pool = threads.current;
  const float* x = input.data.f;
  if (state->affine) {
    const core::ConvShape& s = state->conv_shape;
    ApplyInputAffine(*state->affine, x, static_cast<int64_t>(s.batch) * s.in_height * s.in_width,
                     mul_out, add_out, pool);
    x = add_out;
  }
  if (state->info.kind == core::OpKind::kFullyConnected) {
    state->kernel->RunFullyConnected(state->fc_rows, x, output.data.f, pool);
  } else {
    state->kernel->RunConv(state->conv_shape, x, output.data.f, pool);
  }
  const auto end = std::chrono::steady_clock::now();
  if (state->last_in_graph) {
    threads.choice.Record(std::chrono::duration<double>(end - threads.invoke_start).count());
  }
  if (state->timing) {
    using std::chrono::duration_cast;
    using std::chrono::nanoseconds;
    state->timing->start_ns = duration_cast<nanoseconds>(start.time_since_epoch()).count();
    state->timing->end_ns = duration_cast<nanoseconds>(end.time_since_epoch()).count();
    state->timing->threads = pool != nullptr ? pool->num_threads() : 1;
  }
  return kTfLiteOk;
}

// Whether every tensor has at most one producer and is written before any node reads it (in
// execution order). TFLite 2.18's partitioner (PartitionGraphIntoIndependentNodeSubsets, called
// when the delegate claims its nodes) writes through a wild pointer on graphs that break this:
// three fuzzed files (fuzz/regressions/file/tflite218-partition-*) read a tensor that a later
// node writes, or wrote one tensor from two nodes. Variable tensors (state updated in place)
// are exempt.
bool CheckDataflow(TfLiteContext* context, const TfLiteIntArray* plan, std::string* error) {
  const int num_tensors = static_cast<int>(context->tensors_size);
  std::vector<int> producer(num_tensors, -1), position(num_tensors, -1);
  auto tracked = [&](int t) {
    return t >= 0 && t < num_tensors && !context->tensors[t].is_variable;
  };
  for (int pass = 0; pass < 2; ++pass) {
    for (int i = 0; i < plan->size; ++i) {
      const int node_index = plan->data[i];
      TfLiteNode* node = nullptr;
      TfLiteRegistration* reg = nullptr;
      if (context->GetNodeAndRegistration(context, node_index, &node, &reg) != kTfLiteOk) {
        *error = "cannot read node " + std::to_string(node_index);
        return false;
      }
      const TfLiteIntArray* list = pass == 0 ? node->outputs : node->inputs;
      for (int k = 0; list != nullptr && k < list->size; ++k) {
        const int t = list->data[k];
        if (!tracked(t)) continue;
        if (pass == 0) {  // producers
          if (producer[t] >= 0) {
            *error = TensorLabel(context, t) + " is written by node " +
                     std::to_string(producer[t]) + " and by node " + std::to_string(node_index);
            return false;
          }
          producer[t] = node_index;
          position[t] = i;
        } else if (producer[t] >= 0 && position[t] >= i) {  // readers
          *error = "node " + std::to_string(node_index) + " reads " + TensorLabel(context, t) +
                   ", which node " + std::to_string(producer[t]) +
                   (position[t] == i ? " (itself)" : "") + " writes only at or after it";
          return false;
        }
      }
    }
  }
  return true;
}

TfLiteStatus Delegate::Prepare(TfLiteContext* context, TfLiteDelegate* tflite_delegate) {
  Delegate* self = From(tflite_delegate);
  self->ForgetGraph(context);
  TfLiteIntArray* plan = nullptr;
  if (context->GetExecutionPlan(context, &plan) != kTfLiteOk || plan == nullptr) {
    context->ReportError(context, "TTQ delegate: cannot read the execution plan");
    return kTfLiteError;
  }
  TensorUses uses;  // counted once, at the first convolution
  for (int i = 0; i < plan->size; ++i) {
    const int node_index = plan->data[i];
    TfLiteNode* node = nullptr;
    TfLiteRegistration* reg = nullptr;
    if (context->GetNodeAndRegistration(context, node_index, &node, &reg) != kTfLiteOk) {
      return kTfLiteError;
    }
    core::OpKind kind;
    if (reg->builtin_code != kTfLiteBuiltinCustom || !OpKindFromName(reg->custom_name, &kind)) {
      continue;
    }
    NodeInfo info;
    std::string error;
    // Input shapes are checked in KernelPrepare: here, tensors between ops may still hold
    // placeholder shapes (the runtime propagates shapes only when it prepares the graph).
    if (!CheckNode(context, node, kind, /*check_input_shape=*/false, &info, nullptr, &error)) {
      ReportNodeError(context, node_index, kind, error);
      return kTfLiteError;
    }
    NodeRecord record;
    record.graph = context;
    record.node_index = node_index;
    record.op_name = OpName(kind);
    self->records_.push_back(std::move(record));
    if (kind != core::OpKind::kFullyConnected && !FusionDisabled()) {
      if (uses.producer.empty()) uses = CountTensorUses(context, plan);
      auto affine = std::make_shared<InputAffine>();
      if (MatchInputAffine(context, uses, info.tensors[kInput], info.options.params.in_channels,
                           affine.get())) {
        self->records_.back().fused_nodes = {affine->mul_node, affine->add_node};
        self->records_.back().affine = std::move(affine);
      }
    }
  }

  TfLiteRegistration registration;
  std::memset(&registration, 0, sizeof(registration));
  registration.init = KernelInit;
  registration.free = KernelFree;
  registration.prepare = KernelPrepare;
  registration.invoke = KernelInvoke;
  registration.builtin_code = kTfLiteBuiltinDelegate;
  registration.custom_name = kDelegateKernelName;
  registration.version = 1;
  // One delegate kernel per TTQ node (see the top of this file), with its fused nodes.
  std::vector<std::vector<int>> partitions;
  for (const NodeRecord& r : self->records_) {
    if (r.graph != context) continue;
    partitions.push_back(r.fused_nodes);
    partitions.back().push_back(r.node_index);
  }
  std::string dataflow_error;
  if (!partitions.empty() && !CheckDataflow(context, plan, &dataflow_error)) {
    context->ReportError(context, "TTQ delegate: the graph's data flow is broken: %s.\n",
                         dataflow_error.c_str());
    return kTfLiteError;
  }
  for (const std::vector<int>& partition : partitions) {
    TfLiteIntArray* nodes = NewIntArray(static_cast<int>(partition.size()));
    if (nodes == nullptr) return kTfLiteError;
    for (size_t k = 0; k < partition.size(); ++k) nodes->data[k] = partition[k];
    const TfLiteStatus status = context->ReplaceNodeSubsetsWithDelegateKernels(
        context, registration, nodes, tflite_delegate);
    std::free(nodes);
    if (status != kTfLiteOk) return status;
  }
  return kTfLiteOk;
}

}  // namespace
}  // namespace ttq

extern "C" {

TfLiteTtqDelegateOptions TfLiteTtqDelegateOptionsDefault(void) {
  TfLiteTtqDelegateOptions options;
  options.mode = kTfLiteTtqModeExact;
  options.num_threads = 1;
  return options;
}

TfLiteDelegate* TfLiteTtqDelegateCreate(const TfLiteTtqDelegateOptions* options) {
  const TfLiteTtqDelegateOptions o = options ? *options : TfLiteTtqDelegateOptionsDefault();
  if ((o.mode != kTfLiteTtqModeExact && o.mode != kTfLiteTtqModeFast) || o.num_threads < 1 ||
      o.num_threads > 1024) {
    return nullptr;
  }
  auto* delegate = new (std::nothrow) ttq::Delegate(o);
  return delegate ? delegate->tflite_delegate() : nullptr;
}

void TfLiteTtqDelegateDelete(TfLiteDelegate* delegate) {
  if (delegate != nullptr) delete ttq::Delegate::From(delegate);
}

int TfLiteTtqDelegateNumDelegatedNodes(const TfLiteDelegate* delegate) {
  return delegate ? static_cast<int>(ttq::Delegate::From(delegate)->records().size()) : 0;
}

int TfLiteTtqDelegateGetDelegatedNode(const TfLiteDelegate* delegate, int i, int* node_index,
                                      const char** op_name, const char** kernel_name) {
  if (delegate == nullptr) return -1;
  const auto& records = ttq::Delegate::From(delegate)->records();
  if (i < 0 || static_cast<size_t>(i) >= records.size()) return -1;
  if (node_index) *node_index = records[i].node_index;
  if (op_name) *op_name = records[i].op_name.c_str();
  if (kernel_name) *kernel_name = records[i].kernel_name.c_str();
  return 0;
}

int TfLiteTtqDelegateGetFusedNodes(const TfLiteDelegate* delegate, int i, int* nodes,
                                   int capacity) {
  if (delegate == nullptr) return -1;
  const auto& records = ttq::Delegate::From(delegate)->records();
  if (i < 0 || static_cast<size_t>(i) >= records.size()) return -1;
  const std::vector<int>& fused = records[i].fused_nodes;
  for (int k = 0; k < capacity && static_cast<size_t>(k) < fused.size(); ++k) nodes[k] = fused[k];
  return static_cast<int>(fused.size());
}

int TfLiteTtqDelegateGetNodeTiming(const TfLiteDelegate* delegate, int i, int64_t* start_ns,
                                   int64_t* end_ns) {
  if (delegate == nullptr) return -1;
  const auto& records = ttq::Delegate::From(delegate)->records();
  if (i < 0 || static_cast<size_t>(i) >= records.size()) return -1;
  if (start_ns) *start_ns = records[i].timing->start_ns;
  if (end_ns) *end_ns = records[i].timing->end_ns;
  return 0;
}

int TfLiteTtqDelegateGetNodeThreads(const TfLiteDelegate* delegate, int i) {
  if (delegate == nullptr) return -1;
  const auto& records = ttq::Delegate::From(delegate)->records();
  if (i < 0 || static_cast<size_t>(i) >= records.size()) return -1;
  return records[i].timing->threads;
}

}  // extern "C"
