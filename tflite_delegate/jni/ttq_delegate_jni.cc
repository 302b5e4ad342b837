// JNI functions of org.ttqkeras.TtqDelegate (tflite_delegate/java/): create and delete the TTQ
// delegate and list the nodes it took over. The handle Java gets is the TfLiteDelegate*, which
// is what org.tensorflow.lite.Delegate#getNativeHandle must return for regular TFLite (there
// TfLiteOpaqueDelegate is a typedef of TfLiteDelegate; landscape.md D.1, kernels.md section 3).
//
// Options arrive as string key/value pairs and go through tflite_plugin_create_delegate, the
// same parser the Python loaders use, so every front end accepts the same options and reports
// the same errors. A bad option throws IllegalArgumentException with the parser's message.
#include <jni.h>

#include <cstdint>
#include <string>
#include <vector>

#include "ttq_delegate/ttq_delegate.h"

extern "C" TfLiteDelegate* tflite_plugin_create_delegate(const char* const* options_keys,
                                                         const char* const* options_values,
                                                         size_t num_options,
                                                         void (*report_error)(const char*));

namespace {

// tflite_plugin_create_delegate reports through a plain function pointer; the message is kept
// per thread until the JNI call turns it into an exception.
thread_local std::string g_create_error;
void KeepCreateError(const char* message) { g_create_error = message ? message : ""; }

void Throw(JNIEnv* env, const char* class_name, const std::string& message) {
  jclass cls = env->FindClass(class_name);
  if (cls != nullptr) env->ThrowNew(cls, message.c_str());
}

// Copies a Java String[] into std::strings; false (with a pending exception) on a null entry.
bool ToStrings(JNIEnv* env, jobjectArray array, const char* what, std::vector<std::string>* out) {
  const jsize n = array == nullptr ? 0 : env->GetArrayLength(array);
  for (jsize i = 0; i < n; ++i) {
    auto s = static_cast<jstring>(env->GetObjectArrayElement(array, i));
    if (s == nullptr) {
      Throw(env, "java/lang/NullPointerException",
            std::string("TtqDelegate: option ") + what + " " + std::to_string(i) + " is null");
      return false;
    }
    const char* chars = env->GetStringUTFChars(s, nullptr);
    if (chars == nullptr) return false;  // OutOfMemoryError pending
    out->emplace_back(chars);
    env->ReleaseStringUTFChars(s, chars);
    env->DeleteLocalRef(s);
  }
  return true;
}

TfLiteDelegate* FromHandle(JNIEnv* env, jlong handle) {
  if (handle == 0) {
    Throw(env, "java/lang/IllegalStateException", "TtqDelegate: the delegate is closed");
    return nullptr;
  }
  return reinterpret_cast<TfLiteDelegate*>(static_cast<intptr_t>(handle));
}

}  // namespace

extern "C" {

JNIEXPORT jlong JNICALL Java_org_ttqkeras_TtqDelegate_nativeCreate(JNIEnv* env, jclass,
                                                                   jobjectArray keys,
                                                                   jobjectArray values) {
  std::vector<std::string> k, v;
  if (!ToStrings(env, keys, "key", &k) || !ToStrings(env, values, "value", &v)) return 0;
  if (k.size() != v.size()) {
    Throw(env, "java/lang/IllegalArgumentException",
          "TtqDelegate: " + std::to_string(k.size()) + " option keys but " +
              std::to_string(v.size()) + " values");
    return 0;
  }
  std::vector<const char*> kp, vp;
  for (size_t i = 0; i < k.size(); ++i) {
    kp.push_back(k[i].c_str());
    vp.push_back(v[i].c_str());
  }
  g_create_error.clear();
  TfLiteDelegate* delegate =
      tflite_plugin_create_delegate(kp.data(), vp.data(), k.size(), &KeepCreateError);
  if (delegate == nullptr) {
    Throw(env, "java/lang/IllegalArgumentException",
          g_create_error.empty() ? "TTQ delegate: creation failed" : g_create_error);
    return 0;
  }
  return static_cast<jlong>(reinterpret_cast<intptr_t>(delegate));
}

JNIEXPORT void JNICALL Java_org_ttqkeras_TtqDelegate_nativeDelete(JNIEnv*, jclass, jlong handle) {
  if (handle != 0) {
    TfLiteTtqDelegateDelete(reinterpret_cast<TfLiteDelegate*>(static_cast<intptr_t>(handle)));
  }
}

// Returns {node_index, op_name, kernel} for every delegated node, flattened: 3 strings each.
JNIEXPORT jobjectArray JNICALL Java_org_ttqkeras_TtqDelegate_nativeDelegatedNodes(JNIEnv* env,
                                                                                  jclass,
                                                                                  jlong handle) {
  const TfLiteDelegate* delegate = FromHandle(env, handle);
  if (delegate == nullptr) return nullptr;
  const int n = TfLiteTtqDelegateNumDelegatedNodes(delegate);
  jclass string_class = env->FindClass("java/lang/String");
  if (string_class == nullptr) return nullptr;
  jobjectArray out = env->NewObjectArray(3 * n, string_class, nullptr);
  if (out == nullptr) return nullptr;
  for (int i = 0; i < n; ++i) {
    int node_index = -1;
    const char* op_name = "";
    const char* kernel = "";
    if (TfLiteTtqDelegateGetDelegatedNode(delegate, i, &node_index, &op_name, &kernel) != 0) {
      Throw(env, "java/lang/IllegalStateException", "TtqDelegate: delegated node list changed");
      return nullptr;
    }
    const std::string fields[3] = {std::to_string(node_index), op_name, kernel};
    for (int f = 0; f < 3; ++f) {
      jstring s = env->NewStringUTF(fields[f].c_str());
      if (s == nullptr) return nullptr;
      env->SetObjectArrayElement(out, 3 * i + f, s);
      env->DeleteLocalRef(s);
    }
  }
  return out;
}

}  // extern "C"
