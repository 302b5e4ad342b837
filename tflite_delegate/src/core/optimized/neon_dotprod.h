// The int8 inner loops of the NEON fast-mode kernels, in a plain-NEON version (defined in the
// baseline *_neon.cc files) and an SDOT version (the *_neon_dotprod.cc files, compiled with
// -march=armv8.2-a+dotprod). Plain structs and functions only: this header is included by the
// dotprod translation units, which must not define any inline library code (the linker could
// keep their dotprod copy for baseline callers).
#ifndef TTQ_DELEGATE_CORE_OPTIMIZED_NEON_DOTPROD_H_
#define TTQ_DELEGATE_CORE_OPTIMIZED_NEON_DOTPROD_H_

#include <cstdint>

namespace ttq {
namespace core {
namespace optimized {
namespace neon {

// Int8 conv, one tile of `rows` consecutive output pixels × one block of 8 output channels.
// Weights: PackConvInt8Weights with nr = 8, [tap][cp/4][plane P, N][8 outputs][4 channels] of
// 0/1 bytes. Image: int8 q with the op's in_channels per pixel (reads of the up to 3 channels
// past the last are multiplied by zero weights; the buffer has slack), `zeros` at least cp bytes
// of 0 for padding taps. Writes sums[r·16 + o] = Σ_P q and sums[r·16 + 8 + o] = Σ_N q.
struct ConvInt8Args {
  const int32_t* offsets;  // ConvOffsets rows of the tile's first pixel: [rows][taps]
  int rows;                // 1 .. kConvInt8TileRows
  int taps;
  int steps;  // cp / 4
  const int8_t* image;
  const int8_t* zeros;
  const int8_t* weights;  // this block's planes
  int32_t* sums;
};
constexpr int kConvInt8TileRows = 8;
void ConvInt8TileNeon(const ConvInt8Args& a);
void ConvInt8TileDotprod(const ConvInt8Args& a);

// Fully connected, SDOT family, "bit-sliced" planes (PackBitSlicedPlanes, fully_connected_neon.cc):
// output channels in quads of 4, taps in blocks of 128; per quad and block 128 bytes
// [output 0..3][plane P 16 B, plane N 16 B]; bit i of byte j of a plane = tap 128·block + 16·i + j.
// q: one int8 row of blocks·128 taps (zero padded). Writes sums[2·c] = Σ_P q, sums[2·c + 1] =
// Σ_N q for the channels c of quads [quad_begin, quad_end).
void FullyConnectedBitSlicedDotprod(const uint8_t* planes, const int8_t* q, int blocks,
                                    int quad_begin, int quad_end, int32_t* sums);

}  // namespace neon
}  // namespace optimized
}  // namespace core
}  // namespace ttq

#endif  // TTQ_DELEGATE_CORE_OPTIMIZED_NEON_DOTPROD_H_
