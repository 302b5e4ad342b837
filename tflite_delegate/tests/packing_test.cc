#include "core/packing.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "format_vectors.h"

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

// The format's vectors (tests/data/format_v1.json), shared with the Python packing tests.
TEST(FormatVectors, PackAndUnpack) {
  const testing::Json& v = testing::FormatVectors();
  EXPECT_EQ(v.at("trits_per_byte"), kTritsPerByte);
  EXPECT_EQ(v.at("max_code_byte"), kMaxPackedByte);
  const testing::Json& vectors = v.at("packing").at("vectors");
  ASSERT_GE(vectors.size(), 10u);
  for (const testing::Json& c : vectors) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    const int64_t k = c.at("k");
    const int64_t rows = static_cast<int64_t>(c.at("trits").size());
    const std::vector<int8_t> trits = testing::Flatten<int8_t>(c.at("trits"));
    const std::vector<uint8_t> codes = testing::Flatten<uint8_t>(c.at("codes"));
    ASSERT_EQ(trits.size(), static_cast<size_t>(rows * k));
    ASSERT_EQ(codes.size(), static_cast<size_t>(rows * PackedRowBytes(k)));
    std::vector<uint8_t> packed;
    std::string error;
    ASSERT_TRUE(PackTrits(trits.data(), rows, k, &packed, &error)) << error;
    EXPECT_EQ(packed, codes);
    std::vector<int8_t> unpacked(trits.size(), 7);
    ASSERT_TRUE(UnpackTrits(codes.data(), rows, k, unpacked.data(), &error)) << error;
    EXPECT_EQ(unpacked, trits);
    EXPECT_TRUE(ValidatePackedTrits(codes.data(), rows, k, &error)) << error;
  }
}

TEST(FormatVectors, RejectsBadCodes) {
  const testing::Json& rejects = testing::FormatVectors().at("packing").at("reject_codes");
  ASSERT_GE(rejects.size(), 4u);
  for (const testing::Json& c : rejects) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    const int64_t k = c.at("k");
    const int64_t rows = static_cast<int64_t>(c.at("codes").size());
    const std::vector<uint8_t> codes = testing::Flatten<uint8_t>(c.at("codes"));
    // The delegate's message also locates the byte or the tap.
    std::vector<std::string> expected = c.at("mentions").get<std::vector<std::string>>();
    expected.push_back("row " + std::to_string(c.at("row").get<int>()));
    if (c.contains("tap")) expected.push_back("tap " + std::to_string(c.at("tap").get<int>()));
    if (c.contains("byte")) {
      expected.push_back("code byte " + std::to_string(c.at("byte").get<int>()) + " of row");
    }
    std::vector<int8_t> trits(static_cast<size_t>(rows * k));
    std::string unpack_error, validate_error;
    EXPECT_FALSE(UnpackTrits(codes.data(), rows, k, trits.data(), &unpack_error));
    EXPECT_FALSE(ValidatePackedTrits(codes.data(), rows, k, &validate_error));
    EXPECT_EQ(unpack_error, validate_error);
    for (const std::string& m : expected) {
      EXPECT_NE(unpack_error.find(m), std::string::npos) << unpack_error << " lacks " << m;
    }
  }
}

TEST(FormatVectors, PackRejectsNonTrits) {
  const testing::Json& rejects = testing::FormatVectors().at("packing").at("reject_trits");
  ASSERT_GE(rejects.size(), 1u);
  for (const testing::Json& c : rejects) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    const std::vector<int8_t> trits = testing::Flatten<int8_t>(c.at("trits"));
    const int64_t rows = static_cast<int64_t>(c.at("trits").size());
    const int64_t k = static_cast<int64_t>(trits.size()) / rows;
    std::vector<uint8_t> codes;
    std::string error;
    EXPECT_FALSE(PackTrits(trits.data(), rows, k, &codes, &error));
    std::vector<std::string> expected = c.at("mentions").get<std::vector<std::string>>();
    expected.push_back("row " + std::to_string(c.at("row").get<int>()) + ", tap " +
                       std::to_string(c.at("tap").get<int>()));
    for (const std::string& m : expected) {
      EXPECT_NE(error.find(m), std::string::npos) << error << " lacks " << m;
    }
  }
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
                                            ::testing::Values(1, 2, 4, 5, 6, 9, 10, 11, 27, 64,
                                                              301)));

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

}  // namespace
}  // namespace core
}  // namespace ttq
