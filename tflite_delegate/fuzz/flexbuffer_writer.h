// A minimal FlexBuffer map writer for the fuzzers: int, bool and string values, every slot 8
// bytes wide (the layout flexbuffers.h produces with BIT_WIDTH_64). Test tooling only; the
// delegate never writes FlexBuffers. Keys are written in the order given (the fuzzer decides
// whether they are sorted, duplicated or missing).
#ifndef TTQ_DELEGATE_FUZZ_FLEXBUFFER_WRITER_H_
#define TTQ_DELEGATE_FUZZ_FLEXBUFFER_WRITER_H_

#include <cstdint>
#include <string>
#include <vector>

namespace ttq {
namespace fuzz {

struct FlexEntry {
  enum class Kind { kInt, kBool, kString, kFloat } kind = Kind::kInt;
  std::string key;
  int64_t int_value = 0;
  std::string string_value;
  double float_value = 0;
};

class FlexMapWriter {
 public:
  std::vector<uint8_t> Write(const std::vector<FlexEntry>& entries) {
    buf_.clear();
    std::vector<size_t> key_pos, string_pos(entries.size(), 0);
    for (const FlexEntry& e : entries) {
      key_pos.push_back(buf_.size());
      buf_.insert(buf_.end(), e.key.begin(), e.key.end());
      buf_.push_back(0);
    }
    for (size_t i = 0; i < entries.size(); ++i) {
      if (entries[i].kind != FlexEntry::Kind::kString) continue;
      Align();
      PutUInt(entries[i].string_value.size());
      string_pos[i] = buf_.size();
      buf_.insert(buf_.end(), entries[i].string_value.begin(), entries[i].string_value.end());
      buf_.push_back(0);
    }
    Align();
    PutUInt(entries.size());  // keys vector length
    const size_t keys = buf_.size();
    for (size_t i = 0; i < entries.size(); ++i) PutUInt(buf_.size() - key_pos[i]);
    // Map header: offset to the keys vector, its byte width, the count; then the values.
    PutUInt(buf_.size() - keys);
    PutUInt(8);
    PutUInt(entries.size());
    const size_t values = buf_.size();
    for (size_t i = 0; i < entries.size(); ++i) {
      const FlexEntry& e = entries[i];
      switch (e.kind) {
        case FlexEntry::Kind::kInt:
        case FlexEntry::Kind::kBool:
          PutUInt(static_cast<uint64_t>(e.int_value));
          break;
        case FlexEntry::Kind::kString:
          PutUInt(buf_.size() - string_pos[i]);
          break;
        case FlexEntry::Kind::kFloat: {
          uint64_t bits;
          static_assert(sizeof(bits) == sizeof(e.float_value), "double is 64-bit");
          __builtin_memcpy(&bits, &e.float_value, sizeof(bits));
          PutUInt(bits);
          break;
        }
      }
    }
    for (const FlexEntry& e : entries) {
      // Packed type: (type << 2) | bit width code (3 = 64 bits).
      switch (e.kind) {
        case FlexEntry::Kind::kInt:
          buf_.push_back((1 << 2) | 3);
          break;
        case FlexEntry::Kind::kBool:
          buf_.push_back(26 << 2);
          break;
        case FlexEntry::Kind::kString:
          buf_.push_back((5 << 2) | 3);
          break;
        case FlexEntry::Kind::kFloat:
          buf_.push_back((3 << 2) | 3);
          break;
      }
    }
    const size_t root = buf_.size();
    PutUInt(root - values);
    buf_.push_back((9 << 2) | 3);  // a map, 64-bit slots
    buf_.push_back(8);             // root byte width
    return buf_;
  }

 private:
  void Align() {
    while (buf_.size() % 8) buf_.push_back(0);
  }
  void PutUInt(uint64_t v) {
    for (int i = 0; i < 8; ++i) buf_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  std::vector<uint8_t> buf_;
};

}  // namespace fuzz
}  // namespace ttq

#endif  // TTQ_DELEGATE_FUZZ_FLEXBUFFER_WRITER_H_
