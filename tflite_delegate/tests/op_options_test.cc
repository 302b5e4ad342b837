#include "op_options.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "flexbuffer_reader.h"
#include "flexbuffer_vectors.h"

namespace ttq {
namespace {

using core::OpKind;
using testing::kConvOptions;
using testing::kDepthwiseOptions;
using testing::kFullyConnectedOptions;

std::string ParseError(OpKind kind, const std::vector<uint8_t>& bytes) {
  TtqOpOptions options;
  std::string error;
  EXPECT_FALSE(ParseOpOptions(kind, bytes.data(), bytes.size(), &options, &error));
  return error;
}

TEST(FlexMap, ReadsIntsBoolsStrings) {
  std::map<std::string, FlexValue> map;
  std::string error;
  ASSERT_TRUE(ParseFlexMap(kFullyConnectedOptions.data(), kFullyConnectedOptions.size(), &map,
                           &error))
      << error;
  ASSERT_EQ(map.size(), 5u);
  EXPECT_EQ(map["version"].type, FlexValue::Type::kInt);
  EXPECT_EQ(map["version"].int_value, 1);
  EXPECT_EQ(map["in_features"].int_value, 300);
  EXPECT_EQ(map["activation"].string_value, "NONE");
  EXPECT_EQ(map["keep_num_dims"].type, FlexValue::Type::kBool);
  EXPECT_EQ(map["keep_num_dims"].int_value, 1);
}

TEST(OpOptions, Conv) {
  TtqOpOptions o;
  std::string error;
  ASSERT_TRUE(ParseOpOptions(OpKind::kConv2D, kConvOptions.data(), kConvOptions.size(), &o,
                             &error))
      << error;
  const core::OpParams& p = o.params;
  EXPECT_EQ(p.kind, OpKind::kConv2D);
  EXPECT_EQ(p.activation, core::Activation::kRelu);
  EXPECT_EQ(p.in_channels, 3);
  EXPECT_EQ(p.out_channels, 4);
  EXPECT_EQ(p.kernel_height, 3);
  EXPECT_EQ(p.kernel_width, 2);
  EXPECT_EQ(p.stride_height, 2);
  EXPECT_EQ(p.stride_width, 1);
  EXPECT_EQ(p.dilation_height, 1);
  EXPECT_EQ(p.dilation_width, 2);
  EXPECT_TRUE(p.padding_same);
}

TEST(OpOptions, Depthwise) {
  TtqOpOptions o;
  std::string error;
  ASSERT_TRUE(ParseOpOptions(OpKind::kDepthwiseConv2D, kDepthwiseOptions.data(),
                             kDepthwiseOptions.size(), &o, &error))
      << error;
  EXPECT_EQ(o.params.depth_multiplier, 2);
  EXPECT_EQ(o.params.out_channels, 6);
  EXPECT_EQ(o.params.activation, core::Activation::kRelu6);
  EXPECT_FALSE(o.params.padding_same);
}

TEST(OpOptions, FullyConnected) {
  TtqOpOptions o;
  std::string error;
  ASSERT_TRUE(ParseOpOptions(OpKind::kFullyConnected, kFullyConnectedOptions.data(),
                             kFullyConnectedOptions.size(), &o, &error))
      << error;
  EXPECT_EQ(o.params.in_channels, 300);
  EXPECT_EQ(o.params.out_channels, 10);
  EXPECT_TRUE(o.keep_num_dims);
  EXPECT_EQ(o.params.activation, core::Activation::kNone);
}

TEST(OpOptions, MissingKeysForTheKind) {
  // Fully connected options lack every conv key.
  EXPECT_NE(ParseError(OpKind::kConv2D, kFullyConnectedOptions).find("missing required key"),
            std::string::npos);
  // Conv options lack depth_multiplier.
  EXPECT_NE(ParseError(OpKind::kDepthwiseConv2D, kConvOptions).find("'depth_multiplier'"),
            std::string::npos);
  EXPECT_NE(ParseError(OpKind::kFullyConnected, testing::kFcMissingOutFeatures)
                .find("missing required key 'out_features'"),
            std::string::npos);
}

TEST(OpOptions, RejectsBadValues) {
  const OpKind fc = OpKind::kFullyConnected;
  EXPECT_NE(ParseError(fc, testing::kFcVersion2).find("unsupported format version 2"),
            std::string::npos);
  EXPECT_NE(ParseError(fc, testing::kFcNoVersion).find("'version'"), std::string::npos);
  EXPECT_NE(ParseError(fc, testing::kFcVersionString).find("'version' must be an int"),
            std::string::npos);
  EXPECT_NE(ParseError(fc, testing::kFcBadActivation).find("got 'TANH'"), std::string::npos);
  EXPECT_NE(ParseError(fc, testing::kFcKeepNumDimsInt).find("'keep_num_dims' must be a bool"),
            std::string::npos);
  EXPECT_NE(ParseError(fc, testing::kFcZeroInFeatures).find("'in_features' must be in [1"),
            std::string::npos);
  EXPECT_NE(ParseError(fc, testing::kFcBigInFeatures).find("'in_features' must be in [1"),
            std::string::npos);
  EXPECT_NE(ParseError(OpKind::kConv2D, testing::kConvBadPadding).find("got 'FULL'"),
            std::string::npos);
  EXPECT_NE(ParseError(OpKind::kConv2D, testing::kConvZeroStride).find("'stride_width'"),
            std::string::npos);
  EXPECT_NE(ParseError(OpKind::kDepthwiseConv2D, testing::kDepthwiseBadOutChannels)
                .find("must equal in_channels * depth_multiplier"),
            std::string::npos);
}

TEST(OpOptions, MalformedBuffersNeverCrash) {
  // Every truncation and every single-byte corruption of a valid buffer either parses or
  // fails with a message; under ASan this also proves no read leaves the buffer.
  const std::vector<uint8_t>& good = kConvOptions;
  for (size_t n = 0; n < good.size(); ++n) {
    std::vector<uint8_t> cut(good.begin(), good.begin() + n);
    TtqOpOptions o;
    std::string error;
    EXPECT_FALSE(ParseOpOptions(OpKind::kConv2D, cut.data(), cut.size(), &o, &error)) << n;
    EXPECT_FALSE(error.empty());
  }
  for (size_t i = 0; i < good.size(); ++i) {
    for (int v : {0, 1, 0x7f, 0x80, 0xff}) {
      std::vector<uint8_t> bad = good;
      bad[i] = static_cast<uint8_t>(v);
      TtqOpOptions o;
      std::string error;
      if (!ParseOpOptions(OpKind::kConv2D, bad.data(), bad.size(), &o, &error)) {
        EXPECT_FALSE(error.empty());
      }
    }
  }
  TtqOpOptions o;
  std::string error;
  EXPECT_FALSE(ParseOpOptions(OpKind::kConv2D, nullptr, 0, &o, &error));
  EXPECT_NE(error.find("missing"), std::string::npos);
}

TEST(OpOptions, NamesAndKinds) {
  OpKind kind;
  EXPECT_TRUE(OpKindFromName("TTQ_CONV_2D", &kind));
  EXPECT_EQ(kind, OpKind::kConv2D);
  EXPECT_TRUE(OpKindFromName("TTQ_DEPTHWISE_CONV_2D", &kind));
  EXPECT_EQ(kind, OpKind::kDepthwiseConv2D);
  EXPECT_TRUE(OpKindFromName("TTQ_FULLY_CONNECTED", &kind));
  EXPECT_EQ(kind, OpKind::kFullyConnected);
  EXPECT_FALSE(OpKindFromName("TTQ_CONV", &kind));
  EXPECT_FALSE(OpKindFromName(nullptr, &kind));
}

}  // namespace
}  // namespace ttq
