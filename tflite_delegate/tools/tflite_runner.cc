// tflite_runner: runs a packed ternary .tflite in a stock TFLite runtime, through TFLite's C API,
// with the TTQ delegate attached. It is how the tests run the delegate on aarch64 (under
// qemu-aarch64) inside a real runtime: TFLite 2.18.0's libjnitensorflowlite.so from
// org.bytedeco:tensorflow-lite (scripts/fetch_pinned_artifact.sh), which exports the C API.
//
// Both libraries are dlopen'ed, so the runner links against neither and one binary works with
// any runtime build that exports the C API (TfLiteModelCreateFromFile, ...).
//
//   tflite_runner --tflite_lib=libjnitensorflowlite.so --delegate_lib=libttq_delegate.so
//                 --model=m.tflite [--mode=exact|fast] [--num_threads=N]
//                 [--input_shape=2,10,10,4] --input=x.bin --output=y.bin
//
// --input / --input_shape / --output may repeat, one per model input / output, in order. Input
// files hold the tensor's raw bytes (float32 little-endian for the TTQ models); output files get
// the output tensor's raw bytes. Without --delegate_lib the model runs without the delegate
// (a packed model then fails on its unresolved custom ops, which the tests check).
//
// On success it prints one JSON object to stdout: the runtime version, the delegate's options,
// every delegated node (index, custom op name, kernel) and the output shapes. Every failure
// prints "tflite_runner: error: <what>" to stderr and exits with status 1.
//
// ABI: the delegate (compiled against the TFLite 2.16.1 headers) hands the runtime a
// TfLiteDelegate*; TfLiteDelegate, TfLiteRegistration and the TfLiteContext fields the delegate
// uses have the same layout in 2.16.1 and 2.18.0 (tflite_delegate/README.md, "ABI").
#include <dlfcn.h>

#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tensorflow/lite/core/c/c_api_types.h"  // TfLiteStatus, TfLiteType, TfLiteDelegate
#include "ttq_delegate/ttq_delegate.h"

// TFLite's C API (tensorflow/lite/core/c/c_api.h). That header cannot be included from the
// pinned 2.16.1 header set (it includes core/async/c/types.h, which the AAR lacks), and the
// functions are looked up with dlsym anyway, so the runner declares the pointer types it uses.
extern "C" {
typedef struct TfLiteModel TfLiteModel;
typedef struct TfLiteInterpreterOptions TfLiteInterpreterOptions;
typedef struct TfLiteInterpreter TfLiteInterpreter;
typedef struct TfLiteTensor TfLiteTensor;
}

namespace {

struct TfLiteCApi {
  const char* (*Version)(void);
  TfLiteModel* (*ModelCreateFromFile)(const char*);
  void (*ModelDelete)(TfLiteModel*);
  TfLiteInterpreterOptions* (*OptionsCreate)(void);
  void (*OptionsDelete)(TfLiteInterpreterOptions*);
  void (*OptionsSetNumThreads)(TfLiteInterpreterOptions*, int32_t);
  void (*OptionsAddDelegate)(TfLiteInterpreterOptions*, TfLiteOpaqueDelegate*);
  void (*OptionsSetErrorReporter)(TfLiteInterpreterOptions*, void (*)(void*, const char*, va_list),
                                  void*);
  TfLiteInterpreter* (*InterpreterCreate)(const TfLiteModel*, const TfLiteInterpreterOptions*);
  void (*InterpreterDelete)(TfLiteInterpreter*);
  int32_t (*GetInputTensorCount)(const TfLiteInterpreter*);
  TfLiteTensor* (*GetInputTensor)(const TfLiteInterpreter*, int32_t);
  TfLiteStatus (*ResizeInputTensor)(TfLiteInterpreter*, int32_t, const int*, int32_t);
  TfLiteStatus (*AllocateTensors)(TfLiteInterpreter*);
  TfLiteStatus (*Invoke)(TfLiteInterpreter*);
  int32_t (*GetOutputTensorCount)(const TfLiteInterpreter*);
  const TfLiteTensor* (*GetOutputTensor)(const TfLiteInterpreter*, int32_t);
  TfLiteType (*TensorType)(const TfLiteTensor*);
  int32_t (*TensorNumDims)(const TfLiteTensor*);
  int32_t (*TensorDim)(const TfLiteTensor*, int32_t);
  size_t (*TensorByteSize)(const TfLiteTensor*);
  const char* (*TensorName)(const TfLiteTensor*);
  TfLiteStatus (*TensorCopyFromBuffer)(TfLiteTensor*, const void*, size_t);
  TfLiteStatus (*TensorCopyToBuffer)(const TfLiteTensor*, void*, size_t);
};

struct TtqApi {
  TfLiteTtqDelegateOptions (*OptionsDefault)(void);
  TfLiteDelegate* (*Create)(const TfLiteTtqDelegateOptions*);
  void (*Delete)(TfLiteDelegate*);
  int (*NumDelegatedNodes)(const TfLiteDelegate*);
  int (*GetDelegatedNode)(const TfLiteDelegate*, int, int*, const char**, const char**);
};

[[noreturn]] void Fail(const std::string& what) {
  std::fprintf(stderr, "tflite_runner: error: %s\n", what.c_str());
  std::exit(1);
}

template <typename F>
void Load(void* lib, const char* lib_path, const char* symbol, F* out) {
  void* p = dlsym(lib, symbol);
  if (p == nullptr) Fail(std::string(lib_path) + " does not export " + symbol);
  *out = reinterpret_cast<F>(p);
}

void* Open(const std::string& path) {
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (lib == nullptr) Fail("cannot load " + path + ": " + dlerror());
  return lib;
}

TfLiteCApi LoadTfLite(const std::string& path) {
  void* lib = Open(path);
  const char* p = path.c_str();
  TfLiteCApi api;
  Load(lib, p, "TfLiteVersion", &api.Version);
  Load(lib, p, "TfLiteModelCreateFromFile", &api.ModelCreateFromFile);
  Load(lib, p, "TfLiteModelDelete", &api.ModelDelete);
  Load(lib, p, "TfLiteInterpreterOptionsCreate", &api.OptionsCreate);
  Load(lib, p, "TfLiteInterpreterOptionsDelete", &api.OptionsDelete);
  Load(lib, p, "TfLiteInterpreterOptionsSetNumThreads", &api.OptionsSetNumThreads);
  Load(lib, p, "TfLiteInterpreterOptionsAddDelegate", &api.OptionsAddDelegate);
  Load(lib, p, "TfLiteInterpreterOptionsSetErrorReporter", &api.OptionsSetErrorReporter);
  Load(lib, p, "TfLiteInterpreterCreate", &api.InterpreterCreate);
  Load(lib, p, "TfLiteInterpreterDelete", &api.InterpreterDelete);
  Load(lib, p, "TfLiteInterpreterGetInputTensorCount", &api.GetInputTensorCount);
  Load(lib, p, "TfLiteInterpreterGetInputTensor", &api.GetInputTensor);
  Load(lib, p, "TfLiteInterpreterResizeInputTensor", &api.ResizeInputTensor);
  Load(lib, p, "TfLiteInterpreterAllocateTensors", &api.AllocateTensors);
  Load(lib, p, "TfLiteInterpreterInvoke", &api.Invoke);
  Load(lib, p, "TfLiteInterpreterGetOutputTensorCount", &api.GetOutputTensorCount);
  Load(lib, p, "TfLiteInterpreterGetOutputTensor", &api.GetOutputTensor);
  Load(lib, p, "TfLiteTensorType", &api.TensorType);
  Load(lib, p, "TfLiteTensorNumDims", &api.TensorNumDims);
  Load(lib, p, "TfLiteTensorDim", &api.TensorDim);
  Load(lib, p, "TfLiteTensorByteSize", &api.TensorByteSize);
  Load(lib, p, "TfLiteTensorName", &api.TensorName);
  Load(lib, p, "TfLiteTensorCopyFromBuffer", &api.TensorCopyFromBuffer);
  Load(lib, p, "TfLiteTensorCopyToBuffer", &api.TensorCopyToBuffer);
  return api;
}

TtqApi LoadTtq(const std::string& path) {
  void* lib = Open(path);
  const char* p = path.c_str();
  TtqApi api;
  Load(lib, p, "TfLiteTtqDelegateOptionsDefault", &api.OptionsDefault);
  Load(lib, p, "TfLiteTtqDelegateCreate", &api.Create);
  Load(lib, p, "TfLiteTtqDelegateDelete", &api.Delete);
  Load(lib, p, "TfLiteTtqDelegateNumDelegatedNodes", &api.NumDelegatedNodes);
  Load(lib, p, "TfLiteTtqDelegateGetDelegatedNode", &api.GetDelegatedNode);
  return api;
}

// The runtime's error messages go to stderr and are kept for the failure message.
std::string g_runtime_errors;
void ReportRuntimeError(void*, const char* format, va_list args) {
  char buffer[2048];
  std::vsnprintf(buffer, sizeof(buffer), format, args);
  std::fprintf(stderr, "tflite runtime: %s\n", buffer);
  if (!g_runtime_errors.empty()) g_runtime_errors += "; ";
  g_runtime_errors += buffer;
}

std::string RuntimeErrors() {
  return g_runtime_errors.empty() ? "" : " (runtime: " + g_runtime_errors + ")";
}

std::string JsonString(const char* s) {
  std::string out = "\"";
  for (const char* c = s ? s : ""; *c; ++c) {
    const unsigned char u = static_cast<unsigned char>(*c);
    if (u == '"' || u == '\\') {
      out += '\\';
      out += *c;
    } else if (u < 0x20) {
      char esc[8];
      std::snprintf(esc, sizeof(esc), "\\u%04x", u);
      out += esc;
    } else {
      out += *c;
    }
  }
  return out + "\"";
}

std::vector<char> ReadFile(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) Fail("cannot open input file " + path + ": " + std::strerror(errno));
  std::vector<char> data;
  char chunk[65536];
  size_t n;
  while ((n = std::fread(chunk, 1, sizeof(chunk), f)) > 0)
    data.insert(data.end(), chunk, chunk + n);
  std::fclose(f);
  return data;
}

void WriteFile(const std::string& path, const std::vector<char>& data) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) Fail("cannot write output file " + path + ": " + std::strerror(errno));
  if (std::fwrite(data.data(), 1, data.size(), f) != data.size()) Fail("short write to " + path);
  std::fclose(f);
}

std::vector<int> ParseShape(const std::string& text) {
  std::vector<int> dims;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = text.find(',', start);
    const std::string item =
        text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    char* end = nullptr;
    errno = 0;
    const long d = std::strtol(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || errno != 0 || d < 1 || d > (1 << 30)) {
      Fail("--input_shape '" + text + "': '" + item + "' is not a positive integer");
    }
    dims.push_back(static_cast<int>(d));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return dims;
}

std::string ShapeJson(const TfLiteCApi& tfl, const TfLiteTensor* t) {
  std::string s = "[";
  for (int32_t d = 0; d < tfl.TensorNumDims(t); ++d) {
    if (d) s += ",";
    s += std::to_string(tfl.TensorDim(t, d));
  }
  return s + "]";
}

struct Args {
  std::string tflite_lib, delegate_lib, model, mode = "exact";
  int num_threads = 1;
  std::vector<std::string> inputs, outputs, input_shapes;
};

[[noreturn]] void Usage(const std::string& problem) {
  std::fprintf(stderr,
               "usage: tflite_runner --tflite_lib=LIB --model=FILE [--delegate_lib=LIB]\n"
               "         [--mode=exact|fast] [--num_threads=N] [--input_shape=D0,D1,...]...\n"
               "         [--input=FILE]... [--output=FILE]...\n");
  Fail(problem);
}

Args ParseArgs(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const size_t eq = arg.find('=');
    if (arg.rfind("--", 0) != 0 || eq == std::string::npos) Usage("bad argument '" + arg + "'");
    const std::string key = arg.substr(2, eq - 2), value = arg.substr(eq + 1);
    if (key == "tflite_lib") {
      a.tflite_lib = value;
    } else if (key == "delegate_lib") {
      a.delegate_lib = value;
    } else if (key == "model") {
      a.model = value;
    } else if (key == "mode") {
      if (value != "exact" && value != "fast") {
        Usage("--mode must be 'exact' or 'fast'; got '" + value + "'");
      }
      a.mode = value;
    } else if (key == "num_threads") {
      char* end = nullptr;
      const long n = std::strtol(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || n < 1 || n > 1024) {
        Usage("--num_threads must be an integer in [1, 1024]; got '" + value + "'");
      }
      a.num_threads = static_cast<int>(n);
    } else if (key == "input") {
      a.inputs.push_back(value);
    } else if (key == "output") {
      a.outputs.push_back(value);
    } else if (key == "input_shape") {
      a.input_shapes.push_back(value);
    } else {
      Usage("unknown option --" + key);
    }
  }
  if (a.tflite_lib.empty()) Usage("--tflite_lib is required");
  if (a.model.empty()) Usage("--model is required");
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = ParseArgs(argc, argv);
  const TfLiteCApi tfl = LoadTfLite(args.tflite_lib);

  TfLiteDelegate* delegate = nullptr;
  TtqApi ttq{};
  if (!args.delegate_lib.empty()) {
    ttq = LoadTtq(args.delegate_lib);
    TfLiteTtqDelegateOptions options = ttq.OptionsDefault();
    options.mode = args.mode == "fast" ? kTfLiteTtqModeFast : kTfLiteTtqModeExact;
    options.num_threads = args.num_threads;
    delegate = ttq.Create(&options);
    if (delegate == nullptr) Fail("TfLiteTtqDelegateCreate returned NULL");
  }

  TfLiteModel* model = tfl.ModelCreateFromFile(args.model.c_str());
  if (model == nullptr) Fail("cannot load model " + args.model);
  TfLiteInterpreterOptions* options = tfl.OptionsCreate();
  tfl.OptionsSetNumThreads(options, args.num_threads);
  tfl.OptionsSetErrorReporter(options, &ReportRuntimeError, nullptr);
  // For regular (non stable-ABI) TFLite, TfLiteOpaqueDelegate is TfLiteDelegate.
  if (delegate != nullptr) tfl.OptionsAddDelegate(options, delegate);
  TfLiteInterpreter* interpreter = tfl.InterpreterCreate(model, options);
  if (interpreter == nullptr) Fail("interpreter creation failed" + RuntimeErrors());

  const int32_t num_inputs = tfl.GetInputTensorCount(interpreter);
  if (args.input_shapes.size() > static_cast<size_t>(num_inputs)) {
    Fail("got " + std::to_string(args.input_shapes.size()) + " --input_shape for a model with " +
         std::to_string(num_inputs) + " inputs");
  }
  for (size_t i = 0; i < args.input_shapes.size(); ++i) {
    const std::vector<int> dims = ParseShape(args.input_shapes[i]);
    if (tfl.ResizeInputTensor(interpreter, static_cast<int32_t>(i), dims.data(),
                              static_cast<int32_t>(dims.size())) != kTfLiteOk) {
      Fail("cannot resize input " + std::to_string(i) + " to " + args.input_shapes[i] +
           RuntimeErrors());
    }
  }
  if (tfl.AllocateTensors(interpreter) != kTfLiteOk) {
    Fail("AllocateTensors failed" + RuntimeErrors());
  }
  if (args.inputs.size() != static_cast<size_t>(num_inputs)) {
    Fail("the model has " + std::to_string(num_inputs) + " inputs; got " +
         std::to_string(args.inputs.size()) + " --input");
  }
  for (int32_t i = 0; i < num_inputs; ++i) {
    TfLiteTensor* t = tfl.GetInputTensor(interpreter, i);
    const std::vector<char> data = ReadFile(args.inputs[i]);
    if (data.size() != tfl.TensorByteSize(t)) {
      Fail("input " + std::to_string(i) + " (" + tfl.TensorName(t) + ", shape " +
           ShapeJson(tfl, t) + "): " + args.inputs[i] + " has " + std::to_string(data.size()) +
           " bytes; expected " + std::to_string(tfl.TensorByteSize(t)));
    }
    if (tfl.TensorCopyFromBuffer(t, data.data(), data.size()) != kTfLiteOk) {
      Fail("cannot copy input " + std::to_string(i));
    }
  }
  if (tfl.Invoke(interpreter) != kTfLiteOk) Fail("Invoke failed" + RuntimeErrors());

  const int32_t num_outputs = tfl.GetOutputTensorCount(interpreter);
  if (args.outputs.size() > static_cast<size_t>(num_outputs)) {
    Fail("the model has " + std::to_string(num_outputs) + " outputs; got " +
         std::to_string(args.outputs.size()) + " --output");
  }
  std::string outputs_json = "[";
  for (int32_t i = 0; i < num_outputs; ++i) {
    const TfLiteTensor* t = tfl.GetOutputTensor(interpreter, i);
    if (i < static_cast<int32_t>(args.outputs.size())) {
      std::vector<char> data(tfl.TensorByteSize(t));
      if (tfl.TensorCopyToBuffer(t, data.data(), data.size()) != kTfLiteOk) {
        Fail("cannot copy output " + std::to_string(i));
      }
      WriteFile(args.outputs[i], data);
    }
    if (i) outputs_json += ",";
    outputs_json += "{\"name\":" + JsonString(tfl.TensorName(t)) +
                    ",\"type\":" + std::to_string(static_cast<int>(tfl.TensorType(t))) +
                    ",\"shape\":" + ShapeJson(tfl, t) + "}";
  }
  outputs_json += "]";

  std::string delegated_json = "[";
  if (delegate != nullptr) {
    for (int i = 0; i < ttq.NumDelegatedNodes(delegate); ++i) {
      int node = -1;
      const char* op = nullptr;
      const char* kernel = nullptr;
      if (ttq.GetDelegatedNode(delegate, i, &node, &op, &kernel) != 0) continue;
      if (i) delegated_json += ",";
      delegated_json += "{\"node_index\":" + std::to_string(node) +
                        ",\"op_name\":" + JsonString(op) + ",\"kernel\":" + JsonString(kernel) +
                        "}";
    }
  }
  delegated_json += "]";

  std::printf(
      "{\"runtime_version\":%s,\"delegate\":%s,\"mode\":%s,\"num_threads\":%d,"
      "\"delegated\":%s,\"outputs\":%s}\n",
      JsonString(tfl.Version()).c_str(), delegate ? "true" : "false",
      JsonString(args.mode.c_str()).c_str(), args.num_threads, delegated_json.c_str(),
      outputs_json.c_str());

  tfl.InterpreterDelete(interpreter);
  tfl.OptionsDelete(options);
  tfl.ModelDelete(model);
  if (delegate != nullptr) ttq.Delete(delegate);  // after the interpreter, as the C API asks
  return 0;
}
