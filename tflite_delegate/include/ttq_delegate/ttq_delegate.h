// The TTQ delegate's C API: runs the packed ternary ops of docs/format.md (TTQ_CONV_2D,
// TTQ_DEPTHWISE_CONV_2D, TTQ_FULLY_CONNECTED) inside a TFLite / LiteRT interpreter.
//
// Usage from C or C++:
//
//   TfLiteTtqDelegateOptions options = TfLiteTtqDelegateOptionsDefault();
//   options.num_threads = 2;
//   TfLiteDelegate* delegate = TfLiteTtqDelegateCreate(&options);
//   interpreter->ModifyGraphWithDelegate(delegate);   // or TfLiteInterpreterOptionsAddDelegate
//   ...                                                 // run the interpreter
//   TfLiteTtqDelegateDelete(delegate);                  // after the interpreter is destroyed
//
// From Python, load libttq_delegate.so as an external delegate (ttq_keras.load_delegate, or
// tf.lite.experimental.load_delegate / ai_edge_litert.interpreter.load_delegate) with the
// string options "mode" ("exact" | "fast") and "num_threads" (an integer >= 1).
//
// WARNING: experimental; the API may change. The packed format itself is versioned.
#ifndef TTQ_DELEGATE_TTQ_DELEGATE_H_
#define TTQ_DELEGATE_TTQ_DELEGATE_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// The TFLite delegate struct (tensorflow/lite/core/c/common.h). Declared, not defined, so this
// header does not depend on where the TFLite headers live.
typedef struct TfLiteDelegate TfLiteDelegate;

#if defined(_WIN32)
#define TTQ_DELEGATE_EXPORT __declspec(dllexport)
#else
#define TTQ_DELEGATE_EXPORT __attribute__((visibility("default")))
#endif

typedef enum {
  // Float activations; matches the float Keras model up to float rounding. The default.
  kTfLiteTtqModeExact = 0,
  // Activations quantized dynamically to int8 (one symmetric scale per input row or image),
  // int32 accumulation; faster, with an error of about 1% of the output range.
  kTfLiteTtqModeFast = 1,
} TfLiteTtqNumericMode;

typedef struct {
  // Numeric mode of every delegated op.
  TfLiteTtqNumericMode mode;
  // Threads used to run one op (the calling thread included); 1 runs on the calling thread.
  int num_threads;
} TfLiteTtqDelegateOptions;

// The default options: exact mode, one thread.
TTQ_DELEGATE_EXPORT TfLiteTtqDelegateOptions TfLiteTtqDelegateOptionsDefault(void);

// Creates a delegate; `options` may be NULL for the defaults. Returns NULL if an option is out
// of range. Delete it with TfLiteTtqDelegateDelete after every interpreter using it is gone.
TTQ_DELEGATE_EXPORT TfLiteDelegate* TfLiteTtqDelegateCreate(
    const TfLiteTtqDelegateOptions* options);

TTQ_DELEGATE_EXPORT void TfLiteTtqDelegateDelete(TfLiteDelegate* delegate);

// Introspection: the number of nodes this delegate took over (in every graph it was applied
// to; applying it to a graph again replaces that graph's entries), and for entry i in
// [0, count) the node's index in its graph, its custom op name and the name of the kernel chosen
// for it ("" before the interpreter initialized it). Returns 0 on success, -1 if i is out of
// range. The strings live until the delegate is deleted or applied again. Use one delegate per
// interpreter to keep the list unambiguous.
TTQ_DELEGATE_EXPORT int TfLiteTtqDelegateNumDelegatedNodes(const TfLiteDelegate* delegate);
TTQ_DELEGATE_EXPORT int TfLiteTtqDelegateGetDelegatedNode(const TfLiteDelegate* delegate, int i,
                                                          int* node_index, const char** op_name,
                                                          const char** kernel_name);

// Profiling: steady-clock (CLOCK_MONOTONIC on Linux) nanoseconds at which entry i's last Invoke
// started and ended (both 0 before its first Invoke). The gaps between consecutive TTQ nodes
// are the runtime's other ops (ttq_keras.op_profile attributes them). Returns 0, or -1 if i is
// out of range.
TTQ_DELEGATE_EXPORT int TfLiteTtqDelegateGetNodeTiming(const TfLiteDelegate* delegate, int i,
                                                       int64_t* start_ns, int64_t* end_ns);

// The number of threads entry i's last Invoke ran on: num_threads, or 1 where the op runs on
// the calling thread alone because that measured faster (the delegate times whole invokes both
// ways for each graph and keeps the faster; TTQ_NO_THREAD_CHOICE=1 always uses num_threads). 0
// before its first Invoke, -1 if i is out of range.
TTQ_DELEGATE_EXPORT int TfLiteTtqDelegateGetNodeThreads(const TfLiteDelegate* delegate, int i);

// The builtin nodes the delegate fused into entry i (the MUL and ADD of a per-channel affine
// map that feeds a TTQ convolution; see src/input_affine.h): writes up to `capacity` node
// indices and returns how many there are (0 if none), or -1 if i is out of range. Their time is
// part of entry i's timing.
TTQ_DELEGATE_EXPORT int TfLiteTtqDelegateGetFusedNodes(const TfLiteDelegate* delegate, int i,
                                                       int* nodes, int capacity);

#ifdef __cplusplus
}  // extern "C"

#include <memory>

// A unique_ptr that deletes the delegate.
inline std::unique_ptr<TfLiteDelegate, void (*)(TfLiteDelegate*)> TfLiteTtqDelegateCreateUnique(
    const TfLiteTtqDelegateOptions* options) {
  return std::unique_ptr<TfLiteDelegate, void (*)(TfLiteDelegate*)>(
      TfLiteTtqDelegateCreate(options), TfLiteTtqDelegateDelete);
}
#endif  // __cplusplus

#endif  // TTQ_DELEGATE_TTQ_DELEGATE_H_
