// A small, bounds-checked reader for the one FlexBuffer shape the TTQ ops use: a root map whose
// values are ints, bools, floats and strings (docs/format.md, section 4).
//
// Why not the flatbuffers library: its C++ headers are not part of the TFLite header set we
// build against, and vendoring them is not allowed here. The subset below is ~200 lines and
// every read is checked against the buffer size, so a corrupted custom_options blob yields an
// error message, never an out-of-bounds read.
//
// FlexBuffer layout recap (flatbuffers/docs/FlexBuffers): the last byte of the buffer is the
// root's byte width, the byte before it the root's packed type (type << 2 | log2 width), and the
// root value sits just before those. A map value is an offset (backwards) to its values vector;
// in front of that vector sit [keys-vector offset, keys byte width, size], each one value wide,
// and behind it one packed-type byte per value. Keys are offsets to NUL-terminated strings.
#ifndef TTQ_DELEGATE_FLEXBUFFER_READER_H_
#define TTQ_DELEGATE_FLEXBUFFER_READER_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

namespace ttq {

struct FlexValue {
  enum class Type { kInt, kUInt, kBool, kFloat, kString, kOther };
  Type type = Type::kOther;
  int64_t int_value = 0;      // kInt, kBool (0/1)
  uint64_t uint_value = 0;    // kUInt
  double float_value = 0.0;   // kFloat
  std::string string_value;   // kString
  int raw_type = 0;           // the FlexBuffer type number, for error messages
};

// Name of a FlexValue type for error messages ("int", "string", ...).
const char* FlexTypeName(FlexValue::Type type);

// Parses `data` (size bytes) as a FlexBuffer whose root is a map. On success fills *map (key ->
// value) and returns true; otherwise returns false and sets *error.
bool ParseFlexMap(const uint8_t* data, size_t size, std::map<std::string, FlexValue>* map,
                  std::string* error);

}  // namespace ttq

#endif  // TTQ_DELEGATE_FLEXBUFFER_READER_H_
