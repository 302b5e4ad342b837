#include "core/packing.h"

#include <array>

namespace ttq {
namespace core {
namespace {

// kDecode[b][i] is the signed trit at position i of byte b, for every valid byte b <= 242.
struct DecodeTable {
  std::array<std::array<int8_t, kTritsPerByte>, kMaxPackedByte + 1> trits;
  DecodeTable() {
    for (int b = 0; b <= kMaxPackedByte; ++b) {
      int v = b;
      for (int i = 0; i < kTritsPerByte; ++i) {
        const int digit = v % 3;
        v /= 3;
        trits[b][i] = digit == 0 ? 0 : (digit == 1 ? 1 : -1);
      }
    }
  }
};

const DecodeTable& Table() {
  static const DecodeTable table;
  return table;
}

// Checks one row's bytes; on failure names the row and byte.
bool CheckRow(const uint8_t* row, int64_t row_index, int64_t k, std::string* error) {
  const int64_t bytes = PackedRowBytes(k);
  const auto& table = Table().trits;
  for (int64_t j = 0; j < bytes; ++j) {
    if (row[j] > kMaxPackedByte) {
      if (error) {
        *error = "code byte " + std::to_string(j) + " of row " + std::to_string(row_index) +
                 " is " + std::to_string(row[j]) + "; a packed byte must be at most 242";
      }
      return false;
    }
  }
  const int64_t used_in_last = k - (bytes - 1) * kTritsPerByte;  // 1..5 when k > 0
  if (bytes > 0 && used_in_last < kTritsPerByte) {
    const uint8_t last = row[bytes - 1];
    for (int64_t i = used_in_last; i < kTritsPerByte; ++i) {
      if (table[last][i] != 0) {
        if (error) {
          *error = "row " + std::to_string(row_index) + " has a non-zero padding trit at tap " +
                   std::to_string((bytes - 1) * kTritsPerByte + i) + " (K = " + std::to_string(k) +
                   "; padding trits must be 0)";
        }
        return false;
      }
    }
  }
  return true;
}

}  // namespace

bool ValidatePackedTrits(const uint8_t* codes, int64_t rows, int64_t k, std::string* error) {
  const int64_t bytes = PackedRowBytes(k);
  for (int64_t r = 0; r < rows; ++r) {
    if (!CheckRow(codes + r * bytes, r, k, error)) return false;
  }
  return true;
}

bool UnpackTrits(const uint8_t* codes, int64_t rows, int64_t k, int8_t* trits, std::string* error) {
  const int64_t bytes = PackedRowBytes(k);
  const auto& table = Table().trits;
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* row = codes + r * bytes;
    if (!CheckRow(row, r, k, error)) return false;
    int8_t* out = trits + r * k;
    for (int64_t t = 0; t < k; ++t) {
      out[t] = table[row[t / kTritsPerByte]][t % kTritsPerByte];
    }
  }
  return true;
}

bool PackTrits(const int8_t* trits, int64_t rows, int64_t k, std::vector<uint8_t>* codes,
               std::string* error) {
  const int64_t bytes = PackedRowBytes(k);
  codes->assign(static_cast<size_t>(rows * bytes), 0);
  static constexpr int kPow3[kTritsPerByte] = {1, 3, 9, 27, 81};
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t t = 0; t < k; ++t) {
      const int8_t v = trits[r * k + t];
      if (v < -1 || v > 1) {
        if (error) {
          *error = "trit at row " + std::to_string(r) + ", tap " + std::to_string(t) + " is " +
                   std::to_string(v) + "; expected -1, 0 or +1";
        }
        return false;
      }
      const int digit = v == 0 ? 0 : (v == 1 ? 1 : 2);
      (*codes)[r * bytes + t / kTritsPerByte] +=
          static_cast<uint8_t>(digit * kPow3[t % kTritsPerByte]);
    }
  }
  return true;
}

}  // namespace core
}  // namespace ttq
