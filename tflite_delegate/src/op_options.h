// Parsing and validation of a TTQ op's custom options (docs/format.md, sections 4 and 5).
// Reads the FlexBuffer with flatbuffers/flexbuffers.h (header-only) and knows no TFLite, so the
// gtests can drive it directly.
#ifndef TTQ_DELEGATE_OP_OPTIONS_H_
#define TTQ_DELEGATE_OP_OPTIONS_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/kernel.h"

namespace ttq {

// The format versions this reader implements.
constexpr int kFormatVersion = 1;

// Custom-code names of the three ops.
constexpr char kConvName[] = "TTQ_CONV_2D";
constexpr char kDepthwiseName[] = "TTQ_DEPTHWISE_CONV_2D";
constexpr char kFullyConnectedName[] = "TTQ_FULLY_CONNECTED";

// Maps a custom-code name to its kind; false when the name is not a TTQ op.
bool OpKindFromName(const char* custom_name, core::OpKind* kind);
const char* OpName(core::OpKind kind);

struct TtqOpOptions {
  core::OpParams params;
  bool keep_num_dims = false;  // fully connected only
};

// Parses and validates the FlexBuffer map `data` for an op of `kind`. Returns false and sets
// *error (naming the key and what was expected) when the options break section 4 or 5.
bool ParseOpOptions(core::OpKind kind, const uint8_t* data, size_t size, TtqOpOptions* options,
                    std::string* error);

}  // namespace ttq

#endif  // TTQ_DELEGATE_OP_OPTIONS_H_
