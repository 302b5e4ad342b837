#include "flexbuffer_reader.h"

#include <cstring>

namespace ttq {
namespace {

// FlexBuffer type numbers used here (flexbuffers.h, enum Type).
constexpr int kTypeInt = 1;
constexpr int kTypeUInt = 2;
constexpr int kTypeFloat = 3;
constexpr int kTypeString = 5;
constexpr int kTypeIndirectInt = 6;
constexpr int kTypeIndirectUInt = 7;
constexpr int kTypeIndirectFloat = 8;
constexpr int kTypeMap = 9;
constexpr int kTypeBool = 26;

bool ValidWidth(uint64_t w) { return w == 1 || w == 2 || w == 4 || w == 8; }

class Reader {
 public:
  Reader(const uint8_t* data, size_t size, std::string* error)
      : data_(data), size_(size), error_(error) {}

  bool Fail(const std::string& what) {
    *error_ = "malformed FlexBuffer custom options: " + what;
    return false;
  }

  // Unsigned little-endian integer of `width` bytes at `pos`.
  bool ReadUInt(size_t pos, uint64_t width, uint64_t* out) {
    if (!ValidWidth(width) || pos > size_ || width > size_ - pos) {
      return Fail("read of " + std::to_string(width) + " bytes at offset " +
                  std::to_string(pos) + " is outside the " + std::to_string(size_) +
                  "-byte buffer");
    }
    uint64_t v = 0;
    for (uint64_t i = 0; i < width; ++i) v |= static_cast<uint64_t>(data_[pos + i]) << (8 * i);
    *out = v;
    return true;
  }

  bool ReadInt(size_t pos, uint64_t width, int64_t* out) {
    uint64_t u;
    if (!ReadUInt(pos, width, &u)) return false;
    if (width < 8) {
      const uint64_t sign = uint64_t{1} << (8 * width - 1);
      if (u & sign) u |= ~((sign << 1) - 1);  // sign-extend
    }
    *out = static_cast<int64_t>(u);
    return true;
  }

  bool ReadFloat(size_t pos, uint64_t width, double* out) {
    uint64_t u;
    if (!ReadUInt(pos, width, &u)) return false;
    if (width == 4) {
      uint32_t bits = static_cast<uint32_t>(u);
      float f;
      std::memcpy(&f, &bits, sizeof(f));
      *out = f;
    } else if (width == 8) {
      std::memcpy(out, &u, sizeof(*out));
    } else {
      return Fail("float of width " + std::to_string(width));
    }
    return true;
  }

  // Follows the backward offset stored at `pos` (width bytes).
  bool Indirect(size_t pos, uint64_t width, size_t* target) {
    uint64_t offset;
    if (!ReadUInt(pos, width, &offset)) return false;
    if (offset > pos) {
      return Fail("offset " + std::to_string(offset) + " at " + std::to_string(pos) +
                  " points before the start of the buffer");
    }
    *target = pos - static_cast<size_t>(offset);
    return true;
  }

  // NUL-terminated string starting at pos (keys).
  bool ReadCString(size_t pos, std::string* out) {
    if (pos >= size_) return Fail("key offset outside the buffer");
    const void* end = std::memchr(data_ + pos, 0, size_ - pos);
    if (end == nullptr) return Fail("key is not NUL-terminated");
    out->assign(reinterpret_cast<const char*>(data_ + pos),
                static_cast<const uint8_t*>(end) - (data_ + pos));
    return true;
  }

  // Decodes the value stored at `pos` in a slot of `parent_width` bytes with `packed_type`.
  bool ReadValue(size_t pos, uint64_t parent_width, uint8_t packed_type, FlexValue* out) {
    const int type = packed_type >> 2;
    const uint64_t width = uint64_t{1} << (packed_type & 3);
    out->raw_type = type;
    size_t target;
    switch (type) {
      case kTypeInt:
        out->type = FlexValue::Type::kInt;
        return ReadInt(pos, parent_width, &out->int_value);
      case kTypeUInt:
        out->type = FlexValue::Type::kUInt;
        return ReadUInt(pos, parent_width, &out->uint_value);
      case kTypeBool: {
        uint64_t v;
        if (!ReadUInt(pos, parent_width, &v)) return false;
        out->type = FlexValue::Type::kBool;
        out->int_value = v != 0;
        return true;
      }
      case kTypeFloat:
        out->type = FlexValue::Type::kFloat;
        return ReadFloat(pos, parent_width, &out->float_value);
      case kTypeIndirectInt:
        out->type = FlexValue::Type::kInt;
        return Indirect(pos, parent_width, &target) && ReadInt(target, width, &out->int_value);
      case kTypeIndirectUInt:
        out->type = FlexValue::Type::kUInt;
        return Indirect(pos, parent_width, &target) &&
               ReadUInt(target, width, &out->uint_value);
      case kTypeIndirectFloat:
        out->type = FlexValue::Type::kFloat;
        return Indirect(pos, parent_width, &target) &&
               ReadFloat(target, width, &out->float_value);
      case kTypeString: {
        uint64_t length;
        if (!Indirect(pos, parent_width, &target)) return false;
        if (target < width) return Fail("string length outside the buffer");
        if (!ReadUInt(target - width, width, &length)) return false;
        if (length > size_ - target) return Fail("string runs past the end of the buffer");
        out->type = FlexValue::Type::kString;
        out->string_value.assign(reinterpret_cast<const char*>(data_ + target),
                                 static_cast<size_t>(length));
        return true;
      }
      default:
        out->type = FlexValue::Type::kOther;  // null, vectors, blobs, ...: not used by TTQ ops
        return true;
    }
  }

  bool ParseRootMap(std::map<std::string, FlexValue>* map) {
    if (size_ < 3) return Fail("buffer of " + std::to_string(size_) + " bytes is too short");
    const uint64_t root_width = data_[size_ - 1];
    const uint8_t root_type = data_[size_ - 2];
    if (!ValidWidth(root_width)) {
      return Fail("root byte width " + std::to_string(root_width) + " is not 1, 2, 4 or 8");
    }
    if (size_ - 2 < root_width) return Fail("root value outside the buffer");
    const size_t root_pos = size_ - 2 - static_cast<size_t>(root_width);
    if ((root_type >> 2) != kTypeMap) {
      return Fail("root is FlexBuffer type " + std::to_string(root_type >> 2) +
                  ", expected a map (type 9)");
    }
    const uint64_t width = uint64_t{1} << (root_type & 3);
    size_t values;
    if (!Indirect(root_pos, root_width, &values)) return false;
    if (values < 3 * width) return Fail("map header outside the buffer");
    uint64_t count, keys_width;
    size_t keys;
    if (!ReadUInt(values - width, width, &count)) return false;
    if (!ReadUInt(values - 2 * width, width, &keys_width)) return false;
    if (!Indirect(values - 3 * width, width, &keys)) return false;
    if (!ValidWidth(keys_width)) return Fail("map keys byte width is invalid");
    // Values (count * width bytes) and then one type byte per value must fit.
    if (count > size_ || values > size_ || count * (width + 1) > size_ - values) {
      return Fail("map of " + std::to_string(count) + " entries runs past the end of the buffer");
    }
    uint64_t key_count;
    if (keys < keys_width) return Fail("map keys vector outside the buffer");
    if (!ReadUInt(keys - keys_width, keys_width, &key_count)) return false;
    if (key_count != count) {
      return Fail("map has " + std::to_string(count) + " values but " +
                  std::to_string(key_count) + " keys");
    }
    if (count * keys_width > size_ - keys) return Fail("map keys run past the end of the buffer");
    map->clear();
    for (uint64_t i = 0; i < count; ++i) {
      size_t key_pos;
      std::string key;
      if (!Indirect(keys + i * keys_width, keys_width, &key_pos)) return false;
      if (!ReadCString(key_pos, &key)) return false;
      FlexValue value;
      const uint8_t packed = data_[values + count * width + i];
      if (!ReadValue(values + i * width, width, packed, &value)) return false;
      if (!map->emplace(key, value).second) return Fail("duplicate key '" + key + "'");
    }
    return true;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  std::string* error_;
};

}  // namespace

const char* FlexTypeName(FlexValue::Type type) {
  switch (type) {
    case FlexValue::Type::kInt:
      return "int";
    case FlexValue::Type::kUInt:
      return "uint";
    case FlexValue::Type::kBool:
      return "bool";
    case FlexValue::Type::kFloat:
      return "float";
    case FlexValue::Type::kString:
      return "string";
    case FlexValue::Type::kOther:
      return "other";
  }
  return "other";
}

bool ParseFlexMap(const uint8_t* data, size_t size, std::map<std::string, FlexValue>* map,
                  std::string* error) {
  if (data == nullptr) {
    *error = "custom options are missing (expected a FlexBuffer map)";
    return false;
  }
  Reader reader(data, size, error);
  return reader.ParseRootMap(map);
}

}  // namespace ttq
