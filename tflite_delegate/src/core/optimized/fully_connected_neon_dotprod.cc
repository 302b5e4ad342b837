// SDOT inner loop of the NEON fast-mode fully connected kernel (fully_connected_neon.cc). The
// only code here is compiled with -march=armv8.2-a+dotprod; it runs after the HWCAP_ASIMDDP
// check. Per quad of 4 output channels and block of 128 taps: 8 loads of 16 weight bytes (P and
// N planes of the 4 outputs), 8 loads of 16 activations (shared by the 4 outputs), and per 16
// taps, output and plane one vtstq_u8 (bit i → byte 0 or −1) and one vdotq_s32.
#include <arm_neon.h>

#include <cstddef>

#include "core/optimized/neon_dotprod.h"

namespace ttq {
namespace core {
namespace optimized {
namespace neon {

void FullyConnectedBitSlicedDotprod(const uint8_t* planes, const int8_t* q, int blocks,
                                    int quad_begin, int quad_end, int32_t* sums) {
  uint8x16_t bit[8];
  for (int i = 0; i < 8; ++i) {
    bit[i] = vdupq_n_u8(static_cast<uint8_t>(1u << i));
    // Opaque to the optimizer: keeps the 8 masks in registers instead of re-materializing a
    // movi before every use (21 extra instructions per 512 weights otherwise).
    __asm__("" : "+w"(bit[i]));
  }
  for (int quad = quad_begin; quad < quad_end; ++quad) {
    const uint8_t* w = planes + static_cast<size_t>(quad) * blocks * 128;
    int32x4_t acc_p[4], acc_n[4];
    for (int o = 0; o < 4; ++o) acc_p[o] = acc_n[o] = vdupq_n_s32(0);
    for (int b = 0; b < blocks; ++b) {
      // Live: 8 plane registers, 8 accumulators, 8 bit masks, one activation vector.
      const int8_t* x = q + static_cast<size_t>(b) * 128;
      const uint8_t* wb = w + static_cast<size_t>(b) * 128;
      uint8x16_t p[4], n[4];
#pragma GCC unroll 4
      for (int o = 0; o < 4; ++o) {
        p[o] = vld1q_u8(wb + 32 * o);
        n[o] = vld1q_u8(wb + 32 * o + 16);
      }
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) {
        const int8x16_t xv = vld1q_s8(x + 16 * i);
#pragma GCC unroll 4
        for (int o = 0; o < 4; ++o) {
          // 0xff (−1) where the weight bit is set: the sums come out negated.
          acc_p[o] = vdotq_s32(acc_p[o], vreinterpretq_s8_u8(vtstq_u8(p[o], bit[i])), xv);
          acc_n[o] = vdotq_s32(acc_n[o], vreinterpretq_s8_u8(vtstq_u8(n[o], bit[i])), xv);
        }
      }
    }
    for (int o = 0; o < 4; ++o) {
      sums[2 * (4 * quad + o)] = -vaddvq_s32(acc_p[o]);
      sums[2 * (4 * quad + o) + 1] = -vaddvq_s32(acc_n[o]);
    }
  }
}

}  // namespace neon
}  // namespace optimized
}  // namespace core
}  // namespace ttq
