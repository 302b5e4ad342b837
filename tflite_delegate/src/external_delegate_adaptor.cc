// The external-delegate plugin ABI (tflite/delegates/external/external_delegate_interface.h):
// the two symbols that tf.lite.experimental.load_delegate, ai_edge_litert's load_delegate and
// the C++ ExternalDelegate look up in libttq_delegate.so.
//
// Options (all values are strings):
//   mode         "exact" (default) or "fast"
//   num_threads  an integer >= 1 (default 1)
// An unknown key or a bad value is reported through report_error and no delegate is created,
// which the Python loaders turn into a ValueError.
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "ttq_delegate/ttq_delegate.h"

namespace {

constexpr int kMaxThreads = 1024;

bool ParseOption(const char* key, const char* value, TfLiteTtqDelegateOptions* options,
                 std::string* error) {
  const std::string k = key ? key : "";
  const std::string v = value ? value : "";
  if (k == "mode") {
    if (v == "exact") {
      options->mode = kTfLiteTtqModeExact;
    } else if (v == "fast") {
      options->mode = kTfLiteTtqModeFast;
    } else {
      *error = "option 'mode' must be 'exact' or 'fast'; got '" + v + "'";
      return false;
    }
    return true;
  }
  if (k == "num_threads") {
    char* end = nullptr;
    errno = 0;
    const long n = v.empty() ? 0 : std::strtol(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || errno != 0 || n < 1 || n > kMaxThreads) {
      *error = "option 'num_threads' must be an integer in [1, " + std::to_string(kMaxThreads) +
               "]; got '" + v + "'";
      return false;
    }
    options->num_threads = static_cast<int>(n);
    return true;
  }
  *error = "unknown option '" + k + "'; known options are 'mode' and 'num_threads'";
  return false;
}

}  // namespace

extern "C" {

TTQ_DELEGATE_EXPORT TfLiteDelegate* tflite_plugin_create_delegate(
    const char* const* options_keys, const char* const* options_values, size_t num_options,
    void (*report_error)(const char*)) {
  TfLiteTtqDelegateOptions options = TfLiteTtqDelegateOptionsDefault();
  for (size_t i = 0; i < num_options; ++i) {
    std::string error;
    if (!ParseOption(options_keys[i], options_values[i], &options, &error)) {
      if (report_error) report_error(("TTQ delegate: " + error).c_str());
      return nullptr;
    }
  }
  TfLiteDelegate* delegate = TfLiteTtqDelegateCreate(&options);
  if (delegate == nullptr && report_error) report_error("TTQ delegate: creation failed");
  return delegate;
}

TTQ_DELEGATE_EXPORT void tflite_plugin_destroy_delegate(TfLiteDelegate* delegate) {
  TfLiteTtqDelegateDelete(delegate);
}

}  // extern "C"
