#include "core/packing.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace ttq {
namespace core {
namespace {

std::vector<int8_t> RandomTrits(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(-1, 1);
  std::vector<int8_t> t(static_cast<size_t>(n));
  for (auto& v : t) v = static_cast<int8_t>(d(rng));
  return t;
}

TEST(Packing, RowBytes) {
  EXPECT_EQ(PackedRowBytes(1), 1);
  EXPECT_EQ(PackedRowBytes(5), 1);
  EXPECT_EQ(PackedRowBytes(6), 2);
  EXPECT_EQ(PackedRowBytes(27), 6);
}

TEST(Packing, KnownBytes) {
  // Row of K = 7: taps (+, -, 0, +, -) -> 1 + 3*2 + 0 + 27*1 + 81*2 = 196; (-, +) -> 2 + 3 = 5.
  const std::vector<int8_t> trits = {1, -1, 0, 1, -1, -1, 1};
  std::vector<uint8_t> codes;
  std::string error;
  ASSERT_TRUE(PackTrits(trits.data(), 1, 7, &codes, &error)) << error;
  EXPECT_EQ(codes, (std::vector<uint8_t>{196, 5}));
  // All-negative five trits is the largest byte.
  const std::vector<int8_t> neg(5, -1);
  ASSERT_TRUE(PackTrits(neg.data(), 1, 5, &codes, &error));
  EXPECT_EQ(codes, std::vector<uint8_t>{242});
}

// Round trip over row lengths around multiples of 5 (1..4 padding trits) and several rows.
class PackingRoundTrip : public ::testing::TestWithParam<std::tuple<int, int>> {};

TEST_P(PackingRoundTrip, UnpackInvertsPack) {
  const int rows = std::get<0>(GetParam());
  const int k = std::get<1>(GetParam());
  const std::vector<int8_t> trits = RandomTrits(int64_t{rows} * k, 1000u * rows + k);
  std::vector<uint8_t> codes;
  std::string error;
  ASSERT_TRUE(PackTrits(trits.data(), rows, k, &codes, &error)) << error;
  ASSERT_EQ(codes.size(), static_cast<size_t>(rows * PackedRowBytes(k)));
  for (uint8_t b : codes) ASSERT_LE(b, kMaxPackedByte);
  std::vector<int8_t> back(trits.size(), 7);
  ASSERT_TRUE(UnpackTrits(codes.data(), rows, k, back.data(), &error)) << error;
  EXPECT_EQ(back, trits);
  EXPECT_TRUE(ValidatePackedTrits(codes.data(), rows, k, &error)) << error;
}

INSTANTIATE_TEST_SUITE_P(Shapes, PackingRoundTrip,
                         ::testing::Combine(::testing::Values(1, 3, 16),
                                            ::testing::Values(1, 2, 4, 5, 6, 9, 10, 11, 27,
                                                              64, 301)));

TEST(Packing, EveryValidByteRoundTrips) {
  for (int b = 0; b <= kMaxPackedByte; ++b) {
    const uint8_t byte = static_cast<uint8_t>(b);
    int8_t trits[5];
    std::string error;
    ASSERT_TRUE(UnpackTrits(&byte, 1, 5, trits, &error)) << error;
    std::vector<uint8_t> codes;
    ASSERT_TRUE(PackTrits(trits, 1, 5, &codes, &error));
    EXPECT_EQ(codes[0], byte);
  }
}

TEST(Packing, RejectsByteAbove242) {
  const std::vector<uint8_t> codes = {0, 243, 0, 0};  // two rows of K = 10
  std::vector<int8_t> trits(20);
  std::string error;
  EXPECT_FALSE(UnpackTrits(codes.data(), 2, 10, trits.data(), &error));
  EXPECT_NE(error.find("code byte 1 of row 0 is 243"), std::string::npos) << error;
  error.clear();
  const std::vector<uint8_t> codes2 = {0, 0, 0, 255};
  EXPECT_FALSE(ValidatePackedTrits(codes2.data(), 2, 10, &error));
  EXPECT_NE(error.find("row 1"), std::string::npos) << error;
}

TEST(Packing, RejectsNonZeroPaddingTrit) {
  // K = 3: taps 3 and 4 of the byte are padding. 27 sets tap 3 to +.
  std::vector<int8_t> trits(3);
  std::string error;
  const uint8_t bad = 27;
  EXPECT_FALSE(UnpackTrits(&bad, 1, 3, trits.data(), &error));
  EXPECT_NE(error.find("padding trit at tap 3"), std::string::npos) << error;
  const uint8_t bad2 = 2 * 81;  // tap 4 negative
  EXPECT_FALSE(ValidatePackedTrits(&bad2, 1, 3, &error));
  EXPECT_NE(error.find("tap 4"), std::string::npos) << error;
  const uint8_t good = 1 + 3 * 2 + 9 * 1;  // (+, -, +)
  EXPECT_TRUE(UnpackTrits(&good, 1, 3, trits.data(), &error)) << error;
  EXPECT_EQ(trits, (std::vector<int8_t>{1, -1, 1}));
}

TEST(Packing, PackRejectsNonTrits) {
  const std::vector<int8_t> trits = {0, 1, 2};
  std::vector<uint8_t> codes;
  std::string error;
  EXPECT_FALSE(PackTrits(trits.data(), 1, 3, &codes, &error));
  EXPECT_NE(error.find("tap 2 is 2"), std::string::npos) << error;
}

}  // namespace
}  // namespace core
}  // namespace ttq
