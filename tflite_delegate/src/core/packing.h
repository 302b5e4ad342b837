// Packing of ternary weights: 5 trits per byte, base 3 (docs/format.md, section 3).
//
// Why base 3: a trit carries log2(3) = 1.585 bits. Five trits have 3^5 = 243 states, which fit
// in one byte (256), so a row of K weights takes ceil(K/5) bytes: 1.6 bits per weight, within
// 1% of the entropy bound, against 2 bits for the obvious 2-bit code. The price is a divide-free
// but table-driven unpack, which happens once per op in Prepare, never in the inner loop.
//
// Trit digits: 0 = zero, 1 = positive (+s⁺), 2 = negative (−s⁻). Byte j of a row holds taps
// 5j..5j+4 as d0 + 3·d1 + 9·d2 + 27·d3 + 81·d4, so a valid byte is at most 242. Each row is
// padded with zero trits to a multiple of 5; a reader rejects a non-zero padding trit.
//
// Unpacked trits are int8 in {-1, 0, +1} ("signed trits"), the form kernels consume.
#ifndef TTQ_DELEGATE_CORE_PACKING_H_
#define TTQ_DELEGATE_CORE_PACKING_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ttq {
namespace core {

// Largest valid packed byte: 3^5 - 1.
constexpr int kMaxPackedByte = 242;
constexpr int kTritsPerByte = 5;

// Bytes per packed row of `k` trits: ceil(k / 5).
inline int64_t PackedRowBytes(int64_t k) { return (k + kTritsPerByte - 1) / kTritsPerByte; }

// Unpacks `rows` rows of `k` trits from `codes` ([rows, PackedRowBytes(k)] bytes) into `trits`
// ([rows, k] int8 in {-1, 0, +1}). Returns false and sets *error (naming the row and byte) when a
// byte is greater than 242 or a padding trit is not zero; `trits` is then unspecified.
bool UnpackTrits(const uint8_t* codes, int64_t rows, int64_t k, int8_t* trits, std::string* error);

// Checks `codes` like UnpackTrits without writing anything.
bool ValidatePackedTrits(const uint8_t* codes, int64_t rows, int64_t k, std::string* error);

// Packs `trits` ([rows, k] int8 in {-1, 0, +1}) into [rows, PackedRowBytes(k)] bytes. Returns
// false and sets *error if a value is outside {-1, 0, +1}. Used by tests and tools.
bool PackTrits(const int8_t* trits, int64_t rows, int64_t k, std::vector<uint8_t>* codes,
               std::string* error);

}  // namespace core
}  // namespace ttq

#endif  // TTQ_DELEGATE_CORE_PACKING_H_
