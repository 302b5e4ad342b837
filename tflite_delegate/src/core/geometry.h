// Output size and padding of conv and depthwise ops, with TensorFlow's SAME/VALID rules
// (docs/format.md, section 4). Shared by the delegate glue and the tests.
#ifndef TTQ_DELEGATE_CORE_GEOMETRY_H_
#define TTQ_DELEGATE_CORE_GEOMETRY_H_

#include <string>

#include "core/kernel.h"

namespace ttq {
namespace core {

// Fills *shape for an NHWC input [batch, in_height, in_width, *]. Returns false and sets *error
// when the output would be empty (VALID with an input smaller than the dilated kernel) or a size
// is not positive.
bool ComputeConvShape(const OpParams& params, int batch, int in_height, int in_width,
                      ConvShape* shape, std::string* error);

// Number of taps in one output channel's row: KH·KW·Cin (conv), KH·KW (depthwise), in (fc).
int64_t RowLength(const OpParams& params);

}  // namespace core
}  // namespace ttq

#endif  // TTQ_DELEGATE_CORE_GEOMETRY_H_
