#include "op_options.h"

#include <cstring>
#include <limits>
#include <map>

#include "flatbuffers/flexbuffers.h"

namespace ttq {
namespace {

// The root map's entries, by key. The references point into the caller's buffer.
using FlexMap = std::map<std::string, flexbuffers::Reference>;

// Largest accepted channel count, kernel size, stride, ...: keeps every product we form in
// int64 and every row length in int32.
constexpr int64_t kMaxDim = std::numeric_limits<int32_t>::max();

// Name of a value's FlexBuffer type for error messages ("int", "string", ...).
const char* FlexTypeName(const flexbuffers::Reference& v) {
  switch (v.GetType()) {
    case flexbuffers::FBT_NULL:
      return "null";
    case flexbuffers::FBT_INT:
    case flexbuffers::FBT_INDIRECT_INT:
      return "int";
    case flexbuffers::FBT_UINT:
    case flexbuffers::FBT_INDIRECT_UINT:
      return "uint";
    case flexbuffers::FBT_FLOAT:
    case flexbuffers::FBT_INDIRECT_FLOAT:
      return "float";
    case flexbuffers::FBT_BOOL:
      return "bool";
    case flexbuffers::FBT_STRING:
      return "string";
    case flexbuffers::FBT_KEY:
      return "key";
    case flexbuffers::FBT_MAP:
      return "map";
    case flexbuffers::FBT_BLOB:
      return "blob";
    default:
      return "vector";
  }
}

// Verifies `data` with flexbuffers::VerifyBuffer (every offset, width and length is checked
// against the buffer, so reading it afterwards stays inside it) and collects its root map.
bool ReadRootMap(const uint8_t* data, size_t size, FlexMap* map, std::string* error) {
  if (data == nullptr || size == 0) {
    *error = "custom options are missing (expected a FlexBuffer map)";
    return false;
  }
  const std::string prefix = "malformed FlexBuffer custom options: ";
  if (size < 3) {
    *error = prefix + "buffer of " + std::to_string(size) + " bytes is too short";
    return false;
  }
  // The Verifier asserts this bound instead of failing.
  if (size >= FLATBUFFERS_MAX_BUFFER_SIZE) {
    *error = prefix + "buffer of " + std::to_string(size) + " bytes is too large";
    return false;
  }
  if (!flexbuffers::VerifyBuffer(data, size)) {
    *error = prefix + "the " + std::to_string(size) +
             "-byte buffer fails flexbuffers::VerifyBuffer (an offset, width or length points "
             "outside it)";
    return false;
  }
  const flexbuffers::Reference root = flexbuffers::GetRoot(data, size);
  if (!root.IsMap()) {
    *error = prefix + "root is FlexBuffer type " + std::to_string(root.GetType()) +
             ", expected a map (type " + std::to_string(flexbuffers::FBT_MAP) + ")";
    return false;
  }
  const flexbuffers::Map m = root.AsMap();
  const flexbuffers::TypedVector keys = m.Keys();
  const flexbuffers::Vector values = m.Values();
  // VerifyBuffer checks each vector on its own, not that they have the same length.
  if (keys.size() != values.size()) {
    *error = prefix + "map has " + std::to_string(values.size()) + " values but " +
             std::to_string(keys.size()) + " keys";
    return false;
  }
  map->clear();
  const uint8_t* const end = data + size;
  for (size_t i = 0; i < values.size(); ++i) {
    // flatbuffers 2.0.8's Verifier::VerifyKey stops at the first non-zero byte instead of the
    // terminating zero (fixed in later releases), so check the terminator here. The verifier
    // did check that the key starts inside the buffer.
    const char* key_start = keys[i].AsKey();
    const auto* key_bytes = reinterpret_cast<const uint8_t*>(key_start);
    if (key_bytes < data || key_bytes >= end ||
        std::memchr(key_bytes, 0, static_cast<size_t>(end - key_bytes)) == nullptr) {
      *error = prefix + "key " + std::to_string(i) + " is not NUL-terminated inside the buffer";
      return false;
    }
    const std::string key = key_start;
    if (!map->emplace(key, values[i]).second) {
      *error = prefix + "duplicate key '" + key + "'";
      return false;
    }
  }
  return true;
}

bool GetInt(const FlexMap& map, const char* key, int64_t min_value, int* out, std::string* error) {
  auto it = map.find(key);
  if (it == map.end()) {
    *error = std::string("missing required key '") + key + "' (int)";
    return false;
  }
  const flexbuffers::Reference& v = it->second;
  int64_t value;
  if (v.IsInt()) {
    value = v.AsInt64();
  } else if (v.IsUInt()) {
    value = v.AsUInt64() <= uint64_t{kMaxDim} ? static_cast<int64_t>(v.AsUInt64()) : kMaxDim + 1;
  } else {
    *error = std::string("key '") + key + "' must be an int; got a " + FlexTypeName(v);
    return false;
  }
  if (value < min_value || value > kMaxDim) {
    *error = std::string("key '") + key + "' must be in [" + std::to_string(min_value) + ", " +
             std::to_string(kMaxDim) + "]; got " + std::to_string(value);
    return false;
  }
  *out = static_cast<int>(value);
  return true;
}

bool GetString(const FlexMap& map, const char* key, std::string* out, std::string* error) {
  auto it = map.find(key);
  if (it == map.end()) {
    *error = std::string("missing required key '") + key + "' (string)";
    return false;
  }
  if (!it->second.IsString()) {
    *error = std::string("key '") + key + "' must be a string; got a " + FlexTypeName(it->second);
    return false;
  }
  *out = it->second.AsString().str();
  return true;
}

bool GetBool(const FlexMap& map, const char* key, bool* out, std::string* error) {
  auto it = map.find(key);
  if (it == map.end()) {
    *error = std::string("missing required key '") + key + "' (bool)";
    return false;
  }
  if (!it->second.IsBool()) {
    *error = std::string("key '") + key + "' must be a bool; got a " + FlexTypeName(it->second);
    return false;
  }
  *out = it->second.AsBool();
  return true;
}

bool ParseActivation(const FlexMap& map, core::Activation* out, std::string* error) {
  std::string s;
  if (!GetString(map, "activation", &s, error)) return false;
  if (s == "NONE") {
    *out = core::Activation::kNone;
  } else if (s == "RELU") {
    *out = core::Activation::kRelu;
  } else if (s == "RELU6") {
    *out = core::Activation::kRelu6;
  } else {
    *error = "key 'activation' must be NONE, RELU or RELU6; got '" + s + "'";
    return false;
  }
  return true;
}

bool ParseConv(const FlexMap& map, core::OpParams* p, std::string* error) {
  std::string padding;
  if (!GetInt(map, "in_channels", 1, &p->in_channels, error) ||
      !GetInt(map, "out_channels", 1, &p->out_channels, error) ||
      !GetInt(map, "kernel_height", 1, &p->kernel_height, error) ||
      !GetInt(map, "kernel_width", 1, &p->kernel_width, error) ||
      !GetInt(map, "stride_height", 1, &p->stride_height, error) ||
      !GetInt(map, "stride_width", 1, &p->stride_width, error) ||
      !GetInt(map, "dilation_height", 1, &p->dilation_height, error) ||
      !GetInt(map, "dilation_width", 1, &p->dilation_width, error) ||
      !GetString(map, "padding", &padding, error)) {
    return false;
  }
  if (padding == "SAME") {
    p->padding_same = true;
  } else if (padding == "VALID") {
    p->padding_same = false;
  } else {
    *error = "key 'padding' must be SAME or VALID; got '" + padding + "'";
    return false;
  }
  // Effective kernel sizes and the conv row length KH·KW·Cin must stay within int32.
  const int64_t eh = int64_t{p->kernel_height - 1} * p->dilation_height + 1;
  const int64_t ew = int64_t{p->kernel_width - 1} * p->dilation_width + 1;
  int64_t row = int64_t{p->kernel_height} * p->kernel_width;
  if (p->kind == core::OpKind::kConv2D && row <= kMaxDim) row *= p->in_channels;
  if (eh > kMaxDim || ew > kMaxDim || row > kMaxDim) {
    *error = "kernel " + std::to_string(p->kernel_height) + "x" + std::to_string(p->kernel_width) +
             " with these dilations/channels is too large";
    return false;
  }
  return true;
}

}  // namespace

bool OpKindFromName(const char* custom_name, core::OpKind* kind) {
  if (custom_name == nullptr) return false;
  if (std::strcmp(custom_name, kConvName) == 0) {
    *kind = core::OpKind::kConv2D;
  } else if (std::strcmp(custom_name, kDepthwiseName) == 0) {
    *kind = core::OpKind::kDepthwiseConv2D;
  } else if (std::strcmp(custom_name, kFullyConnectedName) == 0) {
    *kind = core::OpKind::kFullyConnected;
  } else {
    return false;
  }
  return true;
}

const char* OpName(core::OpKind kind) {
  switch (kind) {
    case core::OpKind::kConv2D:
      return kConvName;
    case core::OpKind::kDepthwiseConv2D:
      return kDepthwiseName;
    case core::OpKind::kFullyConnected:
      return kFullyConnectedName;
  }
  return "?";
}

bool ParseOpOptions(core::OpKind kind, const uint8_t* data, size_t size, TtqOpOptions* options,
                    std::string* error) {
  FlexMap map;
  if (!ReadRootMap(data, size, &map, error)) return false;

  // The version first: a reader must not guess at a format it does not implement.
  auto version = map.find("version");
  if (version == map.end()) {
    *error = "missing required key 'version' (int)";
    return false;
  }
  const flexbuffers::Reference& v = version->second;
  if (!v.IsInt() && !v.IsUInt()) {
    *error = std::string("key 'version' must be an int; got a ") + FlexTypeName(v);
    return false;
  }
  const bool is_one =
      v.IsInt() ? v.AsInt64() == kFormatVersion : v.AsUInt64() == uint64_t{kFormatVersion};
  if (!is_one) {
    const std::string got = v.IsInt() ? std::to_string(v.AsInt64()) : std::to_string(v.AsUInt64());
    *error = "unsupported format version " + got + "; this delegate implements version " +
             std::to_string(kFormatVersion);
    return false;
  }

  core::OpParams p;
  p.kind = kind;
  if (!ParseActivation(map, &p.activation, error)) return false;
  options->keep_num_dims = false;
  switch (kind) {
    case core::OpKind::kConv2D:
      if (!ParseConv(map, &p, error)) return false;
      break;
    case core::OpKind::kDepthwiseConv2D:
      if (!GetInt(map, "depth_multiplier", 1, &p.depth_multiplier, error) ||
          !ParseConv(map, &p, error)) {
        return false;
      }
      if (int64_t{p.in_channels} * p.depth_multiplier != p.out_channels) {
        *error = "out_channels (" + std::to_string(p.out_channels) +
                 ") must equal in_channels * depth_multiplier (" + std::to_string(p.in_channels) +
                 " * " + std::to_string(p.depth_multiplier) + ")";
        return false;
      }
      break;
    case core::OpKind::kFullyConnected:
      if (!GetInt(map, "in_features", 1, &p.in_channels, error) ||
          !GetInt(map, "out_features", 1, &p.out_channels, error) ||
          !GetBool(map, "keep_num_dims", &options->keep_num_dims, error)) {
        return false;
      }
      break;
  }
  options->params = p;
  return true;
}

}  // namespace ttq
