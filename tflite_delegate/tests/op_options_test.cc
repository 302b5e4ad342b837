// ParseOpOptions against the format's vectors (tests/data/format_v1.json): every vector parses
// to its options, every reject case fails with a message that names the problem, and no
// truncated or corrupted buffer makes it read outside the buffer (run under ASan).
#include "op_options.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "flatbuffers/flexbuffers.h"
#include "format_vectors.h"

namespace ttq {
namespace {

using core::OpKind;
using testing::FormatVectors;
using testing::Json;
using testing::OptionsBytes;

OpKind KindOf(const std::string& op_name) {
  OpKind kind = OpKind::kConv2D;
  EXPECT_TRUE(OpKindFromName(op_name.c_str(), &kind)) << op_name;
  return kind;
}

std::string ParseError(OpKind kind, const std::vector<uint8_t>& bytes) {
  TtqOpOptions options;
  std::string error;
  EXPECT_FALSE(ParseOpOptions(kind, bytes.data(), bytes.size(), &options, &error));
  return error;
}

const char* ActivationName(core::Activation a) {
  switch (a) {
    case core::Activation::kNone:
      return "NONE";
    case core::Activation::kRelu:
      return "RELU";
    case core::Activation::kRelu6:
      return "RELU6";
  }
  return "?";
}

// The parsed options as the format's keys, to compare with a vector's "options".
Json AsFormatKeys(OpKind kind, const TtqOpOptions& o) {
  const core::OpParams& p = o.params;
  Json j = {{"version", kFormatVersion}, {"activation", ActivationName(p.activation)}};
  if (kind == OpKind::kFullyConnected) {
    j["in_features"] = p.in_channels;
    j["out_features"] = p.out_channels;
    j["keep_num_dims"] = o.keep_num_dims;
    return j;
  }
  j["in_channels"] = p.in_channels;
  j["out_channels"] = p.out_channels;
  j["kernel_height"] = p.kernel_height;
  j["kernel_width"] = p.kernel_width;
  j["stride_height"] = p.stride_height;
  j["stride_width"] = p.stride_width;
  j["dilation_height"] = p.dilation_height;
  j["dilation_width"] = p.dilation_width;
  j["padding"] = p.padding_same ? "SAME" : "VALID";
  if (kind == OpKind::kDepthwiseConv2D) j["depth_multiplier"] = p.depth_multiplier;
  return j;
}

TEST(FormatVectors, NamesAndVersionAreTheFormats) {
  const Json& v = FormatVectors();
  EXPECT_EQ(v.at("format_version"), kFormatVersion);
  std::vector<std::string> names;
  for (const auto& op : v.at("ops").items()) names.push_back(op.key());
  EXPECT_EQ(names, (std::vector<std::string>{kConvName, kDepthwiseName, kFullyConnectedName}));
  OpKind kind;
  EXPECT_TRUE(OpKindFromName("TTQ_CONV_2D", &kind));
  EXPECT_EQ(kind, OpKind::kConv2D);
  EXPECT_TRUE(OpKindFromName("TTQ_DEPTHWISE_CONV_2D", &kind));
  EXPECT_EQ(kind, OpKind::kDepthwiseConv2D);
  EXPECT_TRUE(OpKindFromName("TTQ_FULLY_CONNECTED", &kind));
  EXPECT_EQ(kind, OpKind::kFullyConnected);
  for (OpKind k : {OpKind::kConv2D, OpKind::kDepthwiseConv2D, OpKind::kFullyConnected}) {
    EXPECT_TRUE(OpKindFromName(OpName(k), &kind));
    EXPECT_EQ(kind, k);
  }
  EXPECT_FALSE(OpKindFromName("TTQ_CONV", &kind));
  EXPECT_FALSE(OpKindFromName(nullptr, &kind));
}

TEST(FormatVectors, EveryVectorParsesToItsOptions) {
  const Json& vectors = FormatVectors().at("options").at("vectors");
  ASSERT_GE(vectors.size(), 6u);
  for (const Json& c : vectors) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    const OpKind kind = KindOf(c.at("op"));
    const std::vector<uint8_t> bytes = c.at("flexbuffer").get<std::vector<uint8_t>>();
    TtqOpOptions o;
    std::string error;
    ASSERT_TRUE(ParseOpOptions(kind, bytes.data(), bytes.size(), &o, &error)) << error;
    EXPECT_EQ(o.params.kind, kind);
    // The vector's options restricted to the format's keys (unknown keys are ignored).
    Json expected = Json::object();
    for (const auto& key :
         FormatVectors().at("ops").at(c.at("op").get<std::string>()).at("keys").items()) {
      expected[key.key()] = c.at("options").at(key.key());
    }
    EXPECT_EQ(AsFormatKeys(kind, o), expected);
  }
}

TEST(FormatVectors, EveryRejectCaseFailsNamingTheProblem) {
  const Json& rejects = FormatVectors().at("options").at("reject");
  ASSERT_GE(rejects.size(), 40u);
  for (const Json& c : rejects) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    const std::string error =
        ParseError(KindOf(c.at("op")), c.at("flexbuffer").get<std::vector<uint8_t>>());
    for (const Json& mention : c.at("mentions")) {
      EXPECT_NE(error.find(mention.get<std::string>()), std::string::npos)
          << "error '" << error << "' does not mention " << mention;
    }
    // The delegate's wording of each error class.
    const std::string error_class = c.at("error_class");
    const std::map<std::string, std::string> wording = {
        {"missing_key", "missing required key '"},
        {"wrong_type", "' must be a"},
        {"unsupported_version", "unsupported format version"},
        {"bad_enum", "; got '"},
        {"out_of_range", "' must be in [1, 2147483647]; got "},
        {"depthwise_channels", "must equal in_channels * depth_multiplier"},
        {"missing_options", "custom options are missing (expected a FlexBuffer map)"},
        {"not_a_map", "malformed FlexBuffer custom options: root is FlexBuffer type"},
        {"malformed_flexbuffer", "malformed FlexBuffer custom options: "},
        {"duplicate_key", "malformed FlexBuffer custom options: duplicate key '"},
    };
    ASSERT_TRUE(wording.count(error_class)) << "unknown error class " << error_class;
    EXPECT_NE(error.find(wording.at(error_class)), std::string::npos) << error;
  }
}

// The exact messages of a few cases (what a user sees in the Prepare error).
TEST(OpOptions, MessagesNameKeyAndValue) {
  const OpKind fc = OpKind::kFullyConnected;
  EXPECT_NE(ParseError(fc, OptionsBytes("fc_missing_out_features"))
                .find("missing required key 'out_features' (int)"),
            std::string::npos);
  EXPECT_NE(ParseError(OpKind::kDepthwiseConv2D, OptionsBytes("conv_relu_same"))
                .find("missing required key 'depth_multiplier'"),
            std::string::npos);
  EXPECT_NE(ParseError(OpKind::kConv2D, OptionsBytes("fc_none_keep_num_dims"))
                .find("missing required key"),
            std::string::npos);
  EXPECT_NE(ParseError(fc, OptionsBytes("fc_version_2"))
                .find("unsupported format version 2; this delegate implements version 1"),
            std::string::npos);
  EXPECT_NE(ParseError(fc, OptionsBytes("fc_version_is_string"))
                .find("key 'version' must be an int; got a string"),
            std::string::npos);
  EXPECT_NE(ParseError(fc, OptionsBytes("fc_activation_tanh"))
                .find("key 'activation' must be NONE, RELU or RELU6; got 'TANH'"),
            std::string::npos);
  EXPECT_NE(ParseError(fc, OptionsBytes("fc_keep_num_dims_is_int"))
                .find("key 'keep_num_dims' must be a bool; got a int"),
            std::string::npos);
  EXPECT_NE(ParseError(fc, OptionsBytes("fc_in_features_is_float"))
                .find("key 'in_features' must be an int; got a float"),
            std::string::npos);
  EXPECT_NE(ParseError(fc, OptionsBytes("fc_in_features_zero"))
                .find("key 'in_features' must be in [1, 2147483647]; got 0"),
            std::string::npos);
  EXPECT_NE(
      ParseError(fc, OptionsBytes("fc_in_features_2_pow_40")).find("'in_features' must be in [1"),
      std::string::npos);
  EXPECT_NE(ParseError(OpKind::kConv2D, OptionsBytes("conv_padding_full"))
                .find("key 'padding' must be SAME or VALID; got 'FULL'"),
            std::string::npos);
  EXPECT_NE(
      ParseError(OpKind::kConv2D, OptionsBytes("conv_stride_width_zero")).find("'stride_width'"),
      std::string::npos);
  EXPECT_NE(ParseError(OpKind::kDepthwiseConv2D,
                       OptionsBytes("depthwise_out_channels_not_in_times_multiplier"))
                .find("out_channels (5) must equal in_channels * depth_multiplier (3 * 2)"),
            std::string::npos);
  EXPECT_NE(ParseError(fc, OptionsBytes("fc_duplicate_key")).find("duplicate key 'in_features'"),
            std::string::npos);
}

TEST(OpOptions, RejectsConvRowLongerThanInt32) {
  // Every key in range, but the row length KH·KW·Cin does not fit in int32.
  flexbuffers::Builder fbb;
  fbb.Map([&]() {
    fbb.Int("version", 1);
    fbb.String("activation", "NONE");
    fbb.Int("in_channels", 4096);
    fbb.Int("out_channels", 1);
    fbb.Int("kernel_height", 1024);
    fbb.Int("kernel_width", 1024);
    fbb.Int("stride_height", 1);
    fbb.Int("stride_width", 1);
    fbb.Int("dilation_height", 1);
    fbb.Int("dilation_width", 1);
    fbb.String("padding", "VALID");
  });
  fbb.Finish();
  EXPECT_NE(ParseError(OpKind::kConv2D, fbb.GetBuffer())
                .find("kernel 1024x1024 with these dilations/channels is too large"),
            std::string::npos);
}

TEST(OpOptions, MalformedBuffersNeverCrash) {
  // Every truncation and every single-byte corruption of valid buffers either parses or fails
  // with a message; under ASan this also proves no read leaves the buffer.
  for (const char* name :
       {"conv_relu_same", "fc_none_keep_num_dims", "fc_indirect_ints", "conv_8_byte_ints"}) {
    SCOPED_TRACE(name);
    const std::vector<uint8_t> good = OptionsBytes(name);
    const OpKind kind = name[0] == 'f' ? OpKind::kFullyConnected : OpKind::kConv2D;
    for (size_t n = 0; n < good.size(); ++n) {
      // A copy of exactly n bytes, so ASan sees a read past it.
      std::vector<uint8_t> cut(good.begin(), good.begin() + n);
      TtqOpOptions o;
      std::string error;
      EXPECT_FALSE(ParseOpOptions(kind, cut.data(), cut.size(), &o, &error)) << n;
      EXPECT_FALSE(error.empty());
    }
    for (size_t i = 0; i < good.size(); ++i) {
      for (int v : {0, 1, 0x7f, 0x80, 0xff}) {
        std::vector<uint8_t> bad = good;
        bad[i] = static_cast<uint8_t>(v);
        TtqOpOptions o;
        std::string error;
        if (!ParseOpOptions(kind, bad.data(), bad.size(), &o, &error)) {
          EXPECT_FALSE(error.empty());
        }
      }
    }
  }
  TtqOpOptions o;
  std::string error;
  EXPECT_FALSE(ParseOpOptions(OpKind::kConv2D, nullptr, 0, &o, &error));
  EXPECT_NE(error.find("custom options are missing"), std::string::npos);
}

}  // namespace
}  // namespace ttq
