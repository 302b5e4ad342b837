// Raw-bytes libFuzzer target: the fuzz input is a whole .tflite file. It goes through a real
// TFLite runtime -- TFLite 2.18's C API, dlopen'ed from the pinned Maven artifact
// org.bytedeco:tensorflow-lite:2.18.0-1.5.11:linux-x86_64 (libjnitensorflowlite.so exports
// the C API; `scripts/fetch_pinned_artifact.sh tflite-c-api-linux-x86_64 DEST`) -- with this
// delegate (compiled into the fuzzer,
// instrumented) added to the interpreter options, the way an app uses it:
//   TfLiteModelCreate (flatbuffer verifier) -> TfLiteInterpreterCreate (builder + the
//   delegate's Prepare, which validates every TTQ node) -> AllocateTensors (kernel Prepare:
//   input shapes, output resize) -> deterministic inputs -> Invoke (Eval).
// Why a real runtime: only it turns file bytes into tensors, buffers and custom options the
// way an app's runtime does (verifier, mmap'ed constant buffers, shape propagation between
// ops), so this target finds what the hand-built context of fuzz_one_op cannot fake.
// The runtime itself is not instrumented, so coverage guidance comes from the delegate.
//
// The library is found in $TTQ_TFLITE_C_LIB (set by the Makefile's fuzz target).
#include <dlfcn.h>

#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "tensorflow/lite/c/common.h"
#include "ttq_delegate/ttq_delegate.h"

namespace {

// The few C API entry points used (tensorflow/lite/core/c/c_api.h, 2.18), declared here with
// opaque handles.
struct Model;
struct Options;
struct Interp;
using ErrorReporter = void (*)(void*, const char*, va_list);

struct CApi {
  Model* (*ModelCreate)(const void*, size_t, ErrorReporter, void*);
  void (*ModelDelete)(Model*);
  Options* (*OptionsCreate)();
  void (*OptionsDelete)(Options*);
  void (*OptionsAddDelegate)(Options*, TfLiteDelegate*);
  void (*OptionsSetErrorReporter)(Options*, ErrorReporter, void*);
  Interp* (*InterpreterCreate)(const Model*, const Options*);
  void (*InterpreterDelete)(Interp*);
  TfLiteStatus (*AllocateTensors)(Interp*);
  TfLiteStatus (*Invoke)(Interp*);
  int32_t (*GetInputTensorCount)(const Interp*);
  TfLiteTensor* (*GetInputTensor)(const Interp*, int32_t);
  size_t (*TensorByteSize)(const TfLiteTensor*);
  void* (*TensorData)(const TfLiteTensor*);
};

template <typename F>
void Load(void* lib, const char* name, F* out) {
  *out = reinterpret_cast<F>(dlsym(lib, name));
  if (*out == nullptr) {
    std::fprintf(stderr, "fuzz_tflite_file: %s not found in the TFLite C library\n", name);
    std::exit(2);
  }
}

const CApi& Api() {
  static const CApi api = [] {
    const char* path = std::getenv("TTQ_TFLITE_C_LIB");
    if (path == nullptr) {
      std::fprintf(stderr,
                   "fuzz_tflite_file: set TTQ_TFLITE_C_LIB to libjnitensorflowlite.so "
                   "(scripts/fetch_pinned_artifact.sh tflite-c-api-linux-x86_64 DEST "
                   "writes DEST/libjnitensorflowlite.so)\n");
      std::exit(2);
    }
    void* lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      std::fprintf(stderr, "fuzz_tflite_file: dlopen(%s): %s\n", path, dlerror());
      std::exit(2);
    }
    CApi a;
    Load(lib, "TfLiteModelCreateWithErrorReporter", &a.ModelCreate);
    Load(lib, "TfLiteModelDelete", &a.ModelDelete);
    Load(lib, "TfLiteInterpreterOptionsCreate", &a.OptionsCreate);
    Load(lib, "TfLiteInterpreterOptionsDelete", &a.OptionsDelete);
    Load(lib, "TfLiteInterpreterOptionsAddDelegate", &a.OptionsAddDelegate);
    Load(lib, "TfLiteInterpreterOptionsSetErrorReporter", &a.OptionsSetErrorReporter);
    Load(lib, "TfLiteInterpreterCreate", &a.InterpreterCreate);
    Load(lib, "TfLiteInterpreterDelete", &a.InterpreterDelete);
    Load(lib, "TfLiteInterpreterAllocateTensors", &a.AllocateTensors);
    Load(lib, "TfLiteInterpreterInvoke", &a.Invoke);
    Load(lib, "TfLiteInterpreterGetInputTensorCount", &a.GetInputTensorCount);
    Load(lib, "TfLiteInterpreterGetInputTensor", &a.GetInputTensor);
    Load(lib, "TfLiteTensorByteSize", &a.TensorByteSize);
    Load(lib, "TfLiteTensorData", &a.TensorData);
    return a;
  }();
  return api;
}

void QuietReporter(void*, const char*, va_list) {}

// Number of subgraphs of a verified model (the Model table's field 2). TFLite 2.18's
// InterpreterBuilder dereferences null on a verified model without subgraphs (a runtime bug
// found by this fuzzer, reproduced without the delegate: LiteRT 2.3.0 crashes the same way),
// so such inputs are skipped; ttq_keras.Interpreter rejects them before the runtime sees them.
uint32_t NumSubgraphs(const uint8_t* data, size_t size) {
  auto u32 = [&](size_t pos) -> uint32_t {
    uint32_t v = 0;
    if (pos + 4 <= size) std::memcpy(&v, data + pos, 4);
    return v;
  };
  const size_t root = u32(0);
  const size_t vtable = root - static_cast<int32_t>(u32(root));
  if (root + 4 > size || vtable + 10 > size) return 0;
  uint16_t vtable_size, field;
  std::memcpy(&vtable_size, data + vtable, 2);
  if (vtable_size < 10) return 0;
  std::memcpy(&field, data + vtable + 8, 2);
  if (field == 0) return 0;
  const size_t vec = root + field + u32(root + field);
  return u32(vec);
}

// Bytes the declared tensor shapes of a verified model add up to (8 per element, the widest
// type; saturating). TFLite allocates them itself in AllocateTensors, whatever the delegate
// does: mutated shapes made it ask for 1 GB (libFuzzer's malloc limit) and 48 GB (ASan out of
// memory), with or without the delegate, so inputs above the harness's memory limit are
// skipped. Field numbers from TFLite's schema: Model.subgraphs = 2, SubGraph.tensors = 0,
// Tensor.shape = 0.
uint64_t DeclaredTensorBytes(const uint8_t* data, size_t size) {
  constexpr uint64_t kSaturated = uint64_t{1} << 62;
  auto u32 = [&](uint64_t pos) -> uint32_t {
    uint32_t v = 0;
    if (pos + 4 <= size) std::memcpy(&v, data + pos, 4);
    return v;
  };
  // Position of field `index` of the table at `table`, or 0 if absent or out of bounds.
  auto field = [&](uint64_t table, int index) -> uint64_t {
    if (table + 4 > size) return 0;
    const int64_t vtable = static_cast<int64_t>(table) - static_cast<int32_t>(u32(table));
    if (vtable < 0 || static_cast<uint64_t>(vtable) + 4 > size) return 0;
    uint16_t vtable_size, offset;
    std::memcpy(&vtable_size, data + vtable, 2);
    const uint64_t slot = 4 + 2 * static_cast<uint64_t>(index);
    if (slot + 2 > vtable_size || static_cast<uint64_t>(vtable) + slot + 2 > size) return 0;
    std::memcpy(&offset, data + vtable + slot, 2);
    return offset == 0 || table + offset + 4 > size ? 0 : table + offset;
  };
  auto deref = [&](uint64_t pos) -> uint64_t {  // a uoffset field -> its target, or 0
    const uint64_t target = pos + u32(pos);
    return pos == 0 || target + 4 > size ? 0 : target;
  };
  uint64_t total = 0;
  const uint64_t subgraphs = deref(field(u32(0), 2));
  const uint32_t num_subgraphs = subgraphs ? u32(subgraphs) : 0;
  for (uint32_t s = 0; s < num_subgraphs && subgraphs + 8 + 4 * uint64_t{s} <= size; ++s) {
    const uint64_t subgraph = deref(subgraphs + 4 + 4 * uint64_t{s});
    const uint64_t tensors = subgraph ? deref(field(subgraph, 0)) : 0;
    const uint32_t num_tensors = tensors ? u32(tensors) : 0;
    for (uint32_t t = 0; t < num_tensors && tensors + 8 + 4 * uint64_t{t} <= size; ++t) {
      const uint64_t tensor = deref(tensors + 4 + 4 * uint64_t{t});
      const uint64_t shape = tensor ? deref(field(tensor, 0)) : 0;
      uint64_t elements = 1;
      const uint32_t rank = shape ? u32(shape) : 0;
      for (uint32_t d = 0; d < rank && shape + 8 + 4 * uint64_t{d} <= size; ++d) {
        const int32_t dim = static_cast<int32_t>(u32(shape + 4 + 4 * uint64_t{d}));
        const uint64_t extent = dim > 0 ? static_cast<uint64_t>(dim) : 1;
        elements = elements > kSaturated / extent ? kSaturated : elements * extent;
      }
      total = total + 8 * elements > kSaturated ? kSaturated : total + 8 * elements;
    }
  }
  return total;
}

// Outcome counters, printed at exit with -print_final_stats style output (for the report).
struct Counters {
  long files = 0, model_ok = 0, interpreter_ok = 0, allocated = 0, invoked = 0;
  ~Counters() {
    std::fprintf(stderr,
                 "fuzz_tflite_file: %ld inputs: %ld verified, %ld interpreters (delegate "
                 "Prepare passed), %ld allocated, %ld invoked\n",
                 files, model_ok, interpreter_ok, allocated, invoked);
  }
} counters;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const CApi& api = Api();
  static TfLiteDelegate* exact = TfLiteTtqDelegateCreate(nullptr);
  ++counters.files;
  // The C API keeps a pointer to the bytes: give it its own aligned copy (as an app's mmap).
  void* copy = std::aligned_alloc(16, (size + 15) / 16 * 16 + 16);
  std::memcpy(copy, data, size);
  Model* model = api.ModelCreate(copy, size, QuietReporter, nullptr);
  if (model != nullptr && (NumSubgraphs(static_cast<const uint8_t*>(copy), size) == 0 ||
                           DeclaredTensorBytes(static_cast<const uint8_t*>(copy), size) >
                               (uint64_t{192} << 20))) {  // below -malloc_limit_mb=256
    api.ModelDelete(model);
    model = nullptr;
  }
  if (model != nullptr) {
    ++counters.model_ok;
    Options* options = api.OptionsCreate();
    api.OptionsSetErrorReporter(options, QuietReporter, nullptr);
    api.OptionsAddDelegate(options, exact);
    Interp* interpreter = api.InterpreterCreate(model, options);
    if (interpreter != nullptr) {
      ++counters.interpreter_ok;
      if (api.AllocateTensors(interpreter) == kTfLiteOk) {
        ++counters.allocated;
        // Eval cost grows with the activations a file declares (up to the 1 GiB bound of
        // docs/format.md §5): a 1 KB file may legitimately ask for minutes of compute. Skip
        // Invoke above 1 MiB of inputs so every input runs in well under -timeout.
        size_t input_bytes = 0;
        for (int32_t i = 0; i < api.GetInputTensorCount(interpreter); ++i) {
          input_bytes += api.TensorByteSize(api.GetInputTensor(interpreter, i));
        }
        if (input_bytes > (size_t{1} << 20)) {
          api.InterpreterDelete(interpreter);
          api.OptionsDelete(options);
          api.ModelDelete(model);
          std::free(copy);
          return 0;
        }
        for (int32_t i = 0; i < api.GetInputTensorCount(interpreter); ++i) {
          TfLiteTensor* t = api.GetInputTensor(interpreter, i);
          auto* bytes = static_cast<uint8_t*>(api.TensorData(t));
          const size_t n = api.TensorByteSize(t);
          // Deterministic, finite float-ish inputs (small values in every byte pattern).
          for (size_t j = 0; bytes != nullptr && j < n; ++j) bytes[j] = (j % 4 == 3) ? 0x3f : 0x11;
        }
        if (api.Invoke(interpreter) == kTfLiteOk) ++counters.invoked;
      }
      api.InterpreterDelete(interpreter);
    }
    api.OptionsDelete(options);
    api.ModelDelete(model);
  }
  std::free(copy);
  return 0;
}
