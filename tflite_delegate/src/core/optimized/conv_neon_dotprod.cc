// SDOT inner loop of the NEON fast-mode conv (conv_neon.cc), the only code here compiled with
// -march=armv8.2-a+dotprod; it runs after the HWCAP_ASIMDDP check. Tile of 4 pixels × 8
// outputs: per tap and 4 input channels, 4 loads of 16 weight bytes (P and N planes, outputs
// 0..3 and 4..7), per pixel one 4-byte broadcast and 4 vdotq_s32.
#include <arm_neon.h>

#include <cstddef>

#include "core/optimized/neon_dotprod.h"

namespace ttq {
namespace core {
namespace optimized {
namespace neon {

namespace {

template <int MR>
void ConvInt8TileRowsDotprod(const ConvInt8Args& a, int r0) {
  int32x4_t acc[MR][4];
  for (int r = 0; r < MR; ++r) {
    for (int i = 0; i < 4; ++i) acc[r][i] = vdupq_n_s32(0);
  }
  for (int t = 0; t < a.taps; ++t) {
    const int8_t* x[MR];
    for (int r = 0; r < MR; ++r) {
      const int32_t off = a.offsets[(r0 + r) * a.taps + t];
      x[r] = off < 0 ? a.zeros : a.image + off;
    }
    const int8_t* w = a.weights + static_cast<size_t>(t) * a.steps * 64;
    for (int s = 0; s < a.steps; ++s) {
      int8x16_t wv[4];
      for (int i = 0; i < 4; ++i) wv[i] = vld1q_s8(w + 64 * s + 16 * i);
      for (int r = 0; r < MR; ++r) {
        int32_t v;
        __builtin_memcpy(&v, x[r] + 4 * s, 4);
        const int8x16_t xv = vreinterpretq_s8_s32(vdupq_n_s32(v));
        for (int i = 0; i < 4; ++i) acc[r][i] = vdotq_s32(acc[r][i], wv[i], xv);
      }
    }
  }
  for (int r = 0; r < MR; ++r) {
    int32_t* out = a.sums + (r0 + r) * 16;
    for (int i = 0; i < 4; ++i) vst1q_s32(out + 4 * i, acc[r][i]);
  }
}

}  // namespace

void ConvInt8TileDotprod(const ConvInt8Args& a) {
  int r = 0;
  for (; r + 4 <= a.rows; r += 4) ConvInt8TileRowsDotprod<4>(a, r);
  for (; r < a.rows; ++r) ConvInt8TileRowsDotprod<1>(a, r);
}

}  // namespace neon
}  // namespace optimized
}  // namespace core
}  // namespace ttq
