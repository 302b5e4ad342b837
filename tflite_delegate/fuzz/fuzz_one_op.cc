// Structured libFuzzer target: builds one TTQ op (conv, depthwise or fully connected) from
// fuzzed parameters -- shapes, custom options (well-formed, or with keys dropped, retyped,
// out of range, or the encoded bytes cut and flipped), packed codes (ceil(K/5) bytes per
// row, or the wrong length), scale counts, dtypes, constness, the number of inputs -- and
// runs it through the delegate's Prepare, kernel init/prepare and Eval on a hand-built
// TfLiteContext (one_op_graph.h). Most inputs are valid or nearly valid, so Prepare and Eval
// are reached often.
//
// Properties checked (any violation aborts, which libFuzzer reports as a crash):
//   - no sanitizer report (ASan, UBSan), no allocation above -malloc_limit_mb;
//   - a rejection reports an error naming the node ("TTQ delegate: node 0 (...)");
//   - an accepted valid op in exact mode matches the reference kernel (core/) within float
//     rounding; every output element is written.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/geometry.h"
#include "core/kernel.h"
#include "core/packing.h"
#include "core/reference_kernels.h"
#include "flexbuffer_writer.h"
#include "one_op_graph.h"
#include "op_options.h"
#include "ttq_delegate/ttq_delegate.h"

namespace ttq {
namespace fuzz {
namespace {

// Values a hostile file likes: limits of int32, zero, negatives, powers of two.
int HostileInt(FuzzedDataProvider& fdp) {
  static constexpr int kValues[] = {
      0,          -1,    1,     2,      -2147483647 - 1, 2147483647,
      1073741824, 65536, 46341, -65536, 1 << 28,         (1 << 28) + 1,
      3,          255,   256};
  return kValues[fdp.ConsumeIntegralInRange<size_t>(0, sizeof(kValues) / sizeof(int) - 1)];
}

// A dimension-like value: usually small and valid, sometimes hostile.
int Dim(FuzzedDataProvider& fdp, int lo, int hi) {
  if (fdp.ConsumeIntegralInRange<int>(0, 15) == 0) return HostileInt(fdp);
  return fdp.ConsumeIntegralInRange<int>(lo, hi);
}

TfLiteDelegate* ExactDelegate() {
  static TfLiteDelegate* d = TfLiteTtqDelegateCreate(nullptr);
  return d;
}
TfLiteDelegate* FastDelegate() {
  static TfLiteDelegate* d = [] {
    TfLiteTtqDelegateOptions o = TfLiteTtqDelegateOptionsDefault();
    o.mode = kTfLiteTtqModeFast;
    o.num_threads = 2;
    return TfLiteTtqDelegateCreate(&o);
  }();
  return d;
}

template <typename T>
std::vector<uint8_t> Bytes(const std::vector<T>& v) {
  const auto* p = reinterpret_cast<const uint8_t*>(v.data());
  return std::vector<uint8_t>(p, p + v.size() * sizeof(T));
}

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz_one_op: property violated: %s\n", what);
    std::abort();
  }
}

void RunOne(FuzzedDataProvider& fdp) {
  const int kind_index = fdp.ConsumeIntegralInRange<int>(0, 2);
  const auto kind = static_cast<core::OpKind>(kind_index);
  core::OpParams p;
  p.kind = kind;
  bool keep_num_dims = false;
  std::string padding = fdp.ConsumeBool() ? "SAME" : "VALID";
  static const char* kActivations[] = {"NONE", "RELU", "RELU6"};
  std::string activation = kActivations[fdp.ConsumeIntegralInRange<int>(0, 2)];
  if (kind == core::OpKind::kFullyConnected) {
    p.in_channels = Dim(fdp, 1, 40);
    p.out_channels = Dim(fdp, 1, 24);
    keep_num_dims = fdp.ConsumeBool();
  } else {
    p.in_channels = Dim(fdp, 1, 8);
    p.kernel_height = Dim(fdp, 1, 4);
    p.kernel_width = Dim(fdp, 1, 4);
    p.stride_height = Dim(fdp, 1, 3);
    p.stride_width = Dim(fdp, 1, 3);
    p.dilation_height = Dim(fdp, 1, 3);
    p.dilation_width = Dim(fdp, 1, 3);
    p.padding_same = padding == "SAME";
    if (kind == core::OpKind::kDepthwiseConv2D) {
      p.depth_multiplier = Dim(fdp, 1, 3);
      p.out_channels = fdp.ConsumeIntegralInRange<int>(0, 7) == 0
                           ? Dim(fdp, 1, 24)
                           : static_cast<int>(int64_t{p.in_channels} * p.depth_multiplier);
    } else {
      p.out_channels = Dim(fdp, 1, 16);
    }
  }
  p.activation = activation == "RELU"    ? core::Activation::kRelu
                 : activation == "RELU6" ? core::Activation::kRelu6
                                         : core::Activation::kNone;

  // ---- custom options ----
  std::vector<FlexEntry> entries;
  auto add_int = [&](const char* key, int64_t v) {
    FlexEntry e;
    e.key = key;
    e.int_value = v;
    entries.push_back(e);
  };
  auto add_string = [&](const char* key, const std::string& v) {
    FlexEntry e;
    e.kind = FlexEntry::Kind::kString;
    e.key = key;
    e.string_value = v;
    entries.push_back(e);
  };
  add_string("activation", activation);
  if (kind == core::OpKind::kFullyConnected) {
    add_int("in_features", p.in_channels);
    FlexEntry e;
    e.kind = FlexEntry::Kind::kBool;
    e.key = "keep_num_dims";
    e.int_value = keep_num_dims;
    entries.push_back(e);
    add_int("out_features", p.out_channels);
  } else {
    if (kind == core::OpKind::kDepthwiseConv2D) add_int("depth_multiplier", p.depth_multiplier);
    add_int("dilation_height", p.dilation_height);
    add_int("dilation_width", p.dilation_width);
    add_int("in_channels", p.in_channels);
    add_int("kernel_height", p.kernel_height);
    add_int("kernel_width", p.kernel_width);
    add_int("out_channels", p.out_channels);
    add_string("padding", padding);
    add_int("stride_height", p.stride_height);
    add_int("stride_width", p.stride_width);
  }
  add_int("version", fdp.ConsumeIntegralInRange<int>(0, 31) == 0 ? HostileInt(fdp) : 1);
  // Option mutations: drop, retype, rename, duplicate.
  const int option_mutations =
      fdp.ConsumeIntegralInRange<int>(0, 7) == 0 ? fdp.ConsumeIntegralInRange<int>(1, 3) : 0;
  for (int m = 0; m < option_mutations && !entries.empty(); ++m) {
    const size_t i = fdp.ConsumeIntegralInRange<size_t>(0, entries.size() - 1);
    switch (fdp.ConsumeIntegralInRange<int>(0, 4)) {
      case 0:
        entries.erase(entries.begin() + i);
        break;
      case 1:
        entries[i].kind = FlexEntry::Kind::kString;
        entries[i].string_value = fdp.ConsumeRandomLengthString(12);
        break;
      case 2:
        entries[i].kind = FlexEntry::Kind::kFloat;
        entries[i].float_value = fdp.ConsumeFloatingPoint<double>();
        break;
      case 3:
        entries[i].key = fdp.ConsumeRandomLengthString(16);
        break;
      case 4:
        entries.push_back(entries[i]);
        break;
    }
  }
  std::vector<uint8_t> options = FlexMapWriter().Write(entries);
  // A flipped byte may leave a parseable map with other values (dilation 2 read as 51): the
  // delegate then rightly runs a different op, so such a run is not compared.
  const bool options_corrupted = fdp.ConsumeIntegralInRange<int>(0, 15) == 0;
  if (options_corrupted) {  // corrupt the encoded bytes
    const int flips = fdp.ConsumeIntegralInRange<int>(1, 4);
    for (int f = 0; f < flips && !options.empty(); ++f) {
      options[fdp.ConsumeIntegralInRange<size_t>(0, options.size() - 1)] =
          fdp.ConsumeIntegral<uint8_t>();
    }
    if (fdp.ConsumeBool()) options.resize(fdp.ConsumeIntegralInRange<size_t>(0, options.size()));
  }

  // ---- weights ----
  // Row length K, computed only for small (harness-sized) parameters.
  const bool small = p.in_channels >= 1 && p.in_channels <= 4096 && p.kernel_height >= 1 &&
                     p.kernel_height <= 64 && p.kernel_width >= 1 && p.kernel_width <= 64;
  const int64_t k = small ? core::RowLength(p) : 1;
  const int64_t c_out = p.out_channels;
  const bool sane = small && c_out >= 1 && c_out <= 64 && k >= 1 && k <= 4096;
  const int64_t row_bytes = sane ? core::PackedRowBytes(k) : 1;
  const int64_t rows = sane ? c_out : 1;
  std::vector<int8_t> trits(static_cast<size_t>(rows * (sane ? k : 1)));
  for (auto& t : trits) t = static_cast<int8_t>(fdp.ConsumeIntegralInRange<int>(-1, 1));
  std::vector<uint8_t> codes;
  std::string ignored;
  core::PackTrits(trits.data(), rows, sane ? k : 1, &codes, &ignored);
  std::vector<int> codes_dims = {static_cast<int>(c_out), static_cast<int>(row_bytes)};
  const int codes_mutation = fdp.ConsumeIntegralInRange<int>(0, 23);
  switch (codes_mutation) {
    case 0:  // a byte above 242 or a non-zero padding trit
      if (!codes.empty())
        codes[fdp.ConsumeIntegralInRange<size_t>(0, codes.size() - 1)] =
            fdp.ConsumeIntegral<uint8_t>();
      break;
    case 1:  // wrong row length (floor instead of ceil, or one more)
      codes_dims[1] = static_cast<int>(row_bytes + (fdp.ConsumeBool() ? 1 : -1));
      break;
    case 2:  // truncated buffer
      codes.resize(fdp.ConsumeIntegralInRange<size_t>(0, codes.size()));
      break;
    case 3:  // hostile declared shape
      codes_dims[fdp.ConsumeBool()] = HostileInt(fdp);
      break;
    case 4:
      codes_dims.push_back(1);
      break;
    default:
      break;
  }
  auto scales = [&](float lo, float hi) {
    std::vector<float> v(static_cast<size_t>(rows));
    for (auto& x : v) x = fdp.ConsumeFloatingPointInRange<float>(lo, hi);
    return v;
  };
  std::vector<float> pos = scales(0.0f, 2.0f), neg = scales(0.0f, 2.0f), bias = scales(-1.0f, 1.0f);
  const int scale_mutation = fdp.ConsumeIntegralInRange<int>(0, 23);
  std::vector<int> scale_dims = {static_cast<int>(c_out)};
  if (scale_mutation == 0 && !pos.empty()) pos[0] = NAN;
  if (scale_mutation == 1 && !neg.empty()) neg.back() = -INFINITY;
  if (scale_mutation == 2) pos.pop_back();  // one scale short
  if (scale_mutation == 3) scale_dims[0] = static_cast<int>(rows + 1);

  // ---- the input activation ----
  std::vector<int> in_dims;
  if (kind == core::OpKind::kFullyConnected) {
    const int rank = fdp.ConsumeIntegralInRange<int>(1, 3);
    for (int i = 0; i + 1 < rank; ++i) in_dims.push_back(fdp.ConsumeIntegralInRange<int>(0, 3));
    in_dims.push_back(p.in_channels);
  } else {
    in_dims = {fdp.ConsumeIntegralInRange<int>(0, 2), fdp.ConsumeIntegralInRange<int>(1, 9),
               fdp.ConsumeIntegralInRange<int>(1, 9), p.in_channels};
  }
  if (fdp.ConsumeIntegralInRange<int>(0, 15) == 0 && !in_dims.empty()) {
    in_dims[fdp.ConsumeIntegralInRange<size_t>(0, in_dims.size() - 1)] = HostileInt(fdp);
  }
  if (fdp.ConsumeIntegralInRange<int>(0, 31) == 0) in_dims.pop_back();  // wrong rank
  // Storage only for inputs a real runtime could hold; a huge declared input gets none, and
  // the delegate must reject it before Eval.
  constexpr int64_t kElementCap = int64_t{1} << 40;
  int64_t in_elements =
      1;  // saturates at kElementCap; checked before multiplying (2^40 * 2^31 overflows)
  bool negative_dim = false;
  for (int d : in_dims) {
    if (d < 0) negative_dim = true;
    const int64_t extent = std::max(d, 0);
    in_elements = (extent != 0 && in_elements > kElementCap / extent)
                      ? kElementCap
                      : std::min(in_elements * extent, kElementCap);
  }
  const bool huge_input = negative_dim || in_elements > (int64_t{1} << 20);
  const bool above_bound = negative_dim || in_elements > (int64_t{1} << 28);
  std::vector<float> x;
  if (!huge_input) {
    x.resize(static_cast<size_t>(in_elements));
    for (auto& v : x) v = fdp.ConsumeFloatingPointInRange<float>(-4.0f, 4.0f);
  }

  // ---- tensors and the node ----
  std::vector<TensorSpec> tensors(6);
  tensors[0].dims = in_dims;
  tensors[0].data = Bytes(x);
  tensors[0].has_data = !huge_input;
  tensors[1].type = kTfLiteUInt8;
  tensors[1].dims = codes_dims;
  tensors[1].data = codes;
  tensors[1].constant = true;
  tensors[2].dims = scale_dims;
  tensors[2].data = Bytes(pos);
  tensors[2].constant = true;
  tensors[3].dims = {static_cast<int>(c_out)};
  tensors[3].data = Bytes(neg);
  tensors[3].constant = true;
  tensors[4].dims = {static_cast<int>(c_out)};
  tensors[4].data = Bytes(bias);
  tensors[4].constant = true;
  tensors[5].dims = {1};
  const int tensor_mutation = fdp.ConsumeIntegralInRange<int>(0, 23);
  if (tensor_mutation == 0) tensors[1].type = kTfLiteInt8;  // wrong dtype
  if (tensor_mutation == 1) tensors[2].type = kTfLiteFloat16;
  if (tensor_mutation == 2) tensors[0].type = kTfLiteUInt8;
  if (tensor_mutation == 3) tensors[5].type = kTfLiteInt32;
  if (tensor_mutation == 4) tensors[1].constant = false;  // not constant
  if (tensor_mutation == 5) tensors[4].has_data = false;  // no buffer
  // t.bytes is the runtime's word for the buffer size (TFLite checks it against the shape for
  // constant tensors), so only a smaller claim is a fair mutation.
  if (tensor_mutation == 6) tensors[1].bytes_override = codes.size() / 2;
  std::vector<int> inputs = {0, 1, 2, 3, 4};
  std::vector<int> outputs = {5};
  const int node_mutation = fdp.ConsumeIntegralInRange<int>(0, 23);
  if (node_mutation == 0) inputs.pop_back();    // 4 inputs
  if (node_mutation == 1) inputs.push_back(4);  // 6 inputs
  if (node_mutation == 2) inputs[fdp.ConsumeIntegralInRange<size_t>(0, 4)] = HostileInt(fdp);
  if (node_mutation == 3) outputs.clear();
  if (node_mutation == 4) outputs.push_back(0);
  if (node_mutation == 5) outputs[0] = HostileInt(fdp);
  if (node_mutation == 6) std::swap(inputs[2], inputs[3]);  // still valid types and shapes

  const bool valid = sane && option_mutations == 0 && !options_corrupted && options.size() > 0 &&
                     entries.back().int_value == 1 && codes_mutation > 4 && scale_mutation > 3 &&
                     tensor_mutation > 6 && node_mutation > 6 && !huge_input;
  const bool fast = fdp.ConsumeBool();
  static const char* kNames[] = {kConvName, kDepthwiseName, kFullyConnectedName};
  if (std::getenv("TTQ_FUZZ_VERBOSE")) {
    std::fprintf(stderr,
                 "kind %d cin %d cout %d k %dx%d s %dx%d d %dx%d mult %d same %d fast %d in:",
                 kind_index, p.in_channels, p.out_channels, p.kernel_height, p.kernel_width,
                 p.stride_height, p.stride_width, p.dilation_height, p.dilation_width,
                 p.depth_multiplier, p.padding_same, fast);
    for (int d : in_dims) std::fprintf(stderr, " %d", d);
    std::fprintf(stderr, " inputs:");
    for (int i : inputs) std::fprintf(stderr, " %d", i);
    std::fprintf(stderr, " x %zu floats\n", x.size());
  }
  OneOpGraph graph(tensors, inputs, outputs, kNames[kind_index], options);
  const RunOutcome outcome = graph.Run(fast ? FastDelegate() : ExactDelegate());
  if (outcome == RunOutcome::kArenaFull) return;  // accepted, within the 1 GiB bound
  if (outcome == RunOutcome::kRejected) {
    Check(graph.errors().find("TTQ delegate: node 0 (") != std::string::npos,
          "a rejection must report 'TTQ delegate: node 0 (OP): ...'");
    return;
  }
  if (above_bound && inputs[0] == 0) {
    std::fprintf(stderr, "op %d, input dims:", kind_index);
    for (int d : in_dims) std::fprintf(stderr, " %d", d);
    std::fprintf(stderr, "\n");
  }
  Check(!above_bound || inputs[0] != 0,
        "an input with a negative dim or more than 2^28 elements ran");
  const std::vector<float>& y = graph.output();
  for (float v : y) Check(v != -12345.0f, "an output element was not written");
  if (!valid || fast || y.empty()) return;

  // Differential check against the reference kernel (exact mode).
  core::TernaryWeights w;
  w.trits = trits.data();
  w.pos_scales = pos.data();
  w.neg_scales = neg.data();
  w.bias = bias.data();
  auto reference = core::CreateReferenceKernel(p, w, core::NumericMode::kExact);
  std::vector<float> expected(y.size());
  int64_t rows_or_batch = 0;
  if (kind == core::OpKind::kFullyConnected) {
    rows_or_batch = in_elements / p.in_channels;
    reference->RunFullyConnected(static_cast<int>(rows_or_batch), x.data(), expected.data(),
                                 nullptr);
  } else {
    core::ConvShape shape;
    std::string error;
    Check(core::ComputeConvShape(p, in_dims[0], in_dims[1], in_dims[2], &shape, &error),
          "the delegate ran a conv whose geometry the reference rejects");
    reference->RunConv(shape, x.data(), expected.data(), nullptr);
  }
  float max_scale = 1.0f;
  for (size_t c = 0; c < pos.size(); ++c) max_scale = std::max({max_scale, pos[c], neg[c]});
  for (size_t i = 0; i < y.size(); ++i) {
    // |x| <= 4, so an output's magnitude is at most 4 * K * max scale + 1.
    const float tolerance = 1e-5f * (4.0f * static_cast<float>(k) * max_scale + 1.0f);
    if (!(std::fabs(y[i] - expected[i]) <= tolerance)) {
      std::fprintf(stderr,
                   "element %zu: delegate %g, reference %g (kind %d, in %d, out %d, kernel %dx%d, "
                   "stride %dx%d, dilation %dx%d, %s, input",
                   i, y[i], expected[i], kind_index, p.in_channels, p.out_channels, p.kernel_height,
                   p.kernel_width, p.stride_height, p.stride_width, p.dilation_height,
                   p.dilation_width, p.padding_same ? "SAME" : "VALID");
      for (int d : in_dims) std::fprintf(stderr, " %d", d);
      std::fprintf(stderr, ")\n");
      Check(false, "the delegate's exact-mode output differs from the reference kernel");
    }
  }
}

}  // namespace
}  // namespace fuzz
}  // namespace ttq

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider fdp(data, size);
  ttq::fuzz::RunOne(fdp);
  return 0;
}
