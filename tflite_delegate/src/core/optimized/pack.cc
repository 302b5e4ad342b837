// Weight repacking and AlignedBuffer; compiled for the baseline ISA.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

#include "core/optimized/internal.h"

namespace ttq {
namespace core {
namespace optimized {

bool ConvDequantRequested() {
  static const bool requested = [] {
    const char* env = std::getenv("TTQ_CONV_DEQUANT");
    return env != nullptr && env[0] == '1';
  }();
  return requested;
}

bool WinogradDisabled() {
  static const bool disabled = [] {
    const char* env = std::getenv("TTQ_NO_WINOGRAD");
    return env != nullptr && env[0] == '1';
  }();
  return disabled;
}

AlignedBuffer::~AlignedBuffer() { std::free(data_); }

void AlignedBuffer::Reserve(size_t bytes) {
  if (bytes <= size_ && data_ != nullptr) return;
  std::free(data_);
  data_ = nullptr;
  size_ = 0;
  const size_t rounded = (bytes + 63) / 64 * 64 + 64;  // slack for over-reads of a vector
  data_ = std::aligned_alloc(64, rounded);
  if (data_ == nullptr) throw std::bad_alloc();
  std::memset(data_, 0, rounded);
  size_ = bytes;
}

void PackBlockedFloatWeights(const TernaryWeights& w, int out_channels, int k, int nr,
                             AlignedBuffer* out) {
  const int padded = RoundUp(out_channels, nr);
  out->Reserve(sizeof(float) * static_cast<size_t>(padded) * k);
  float* dst = out->as<float>();
  std::memset(dst, 0, sizeof(float) * static_cast<size_t>(padded) * k);
  for (int c = 0; c < out_channels; ++c) {
    const int8_t* row = w.trits + static_cast<int64_t>(c) * k;
    float* block = dst + static_cast<int64_t>(c / nr) * k * nr + c % nr;
    for (int i = 0; i < k; ++i) {
      const float v = row[i] > 0 ? w.pos_scales[c] : (row[i] < 0 ? -w.neg_scales[c] : 0.0f);
      block[static_cast<int64_t>(i) * nr] = v;
    }
  }
}

void PackChannelVector(const float* v, int n, int pad, AlignedBuffer* out) {
  const int padded = RoundUp(n, pad);
  out->Reserve(sizeof(float) * padded);
  float* dst = out->as<float>();
  std::memset(dst, 0, sizeof(float) * padded);
  std::memcpy(dst, v, sizeof(float) * n);
}

void PackNibblePlanes(const int8_t* trits, int out_channels, int k, AlignedBuffer* out,
                      AlignedBuffer* counts) {
  const int tiles = (out_channels + 31) / 32;
  const int pairs = RoundUp(k, 16) / 8;
  const size_t bytes = static_cast<size_t>(tiles) * pairs * 64;
  out->Reserve(bytes);
  uint8_t* base = out->as<uint8_t>();
  std::memset(base, 0, bytes);
  counts->Reserve(sizeof(int32_t) * 2 * out_channels);
  int32_t* cnt = counts->as<int32_t>();
  for (int c = 0; c < out_channels; ++c) {
    const int8_t* row = trits + static_cast<int64_t>(c) * k;
    uint8_t* tile = base + static_cast<size_t>(c / 32) * pairs * 64;
    const int o = c % 32;
    int32_t np = 0, nn = 0;
    for (int i = 0; i < k; ++i) {
      if (row[i] == 0) continue;
      const int pair = i / 8, nibble = (i % 8) / 4, bit = i % 4;
      uint8_t* plane = tile + static_cast<size_t>(pair) * 64 + (row[i] > 0 ? 0 : 32);
      plane[o] |= static_cast<uint8_t>(1u << (nibble * 4 + bit));
      (row[i] > 0 ? np : nn) += 1;
    }
    cnt[2 * c] = np;
    cnt[2 * c + 1] = nn;
  }
}

void PackTripletPlanes(const int8_t* trits, int out_channels, int k, AlignedBuffer* out) {
  const int tiles = (out_channels + 7) / 8;
  const int words = (k + 29) / 30;
  const size_t bytes = static_cast<size_t>(tiles) * words * 64;
  out->Reserve(bytes);
  uint8_t* base = out->as<uint8_t>();
  std::memset(base, 0, bytes);
  for (int c = 0; c < out_channels; ++c) {
    const int8_t* row = trits + static_cast<int64_t>(c) * k;
    uint32_t* tile = reinterpret_cast<uint32_t*>(base + static_cast<size_t>(c / 8) * words * 64);
    for (int i = 0; i < k; ++i) {
      if (row[i] == 0) continue;
      const int word = i / 30, within = i % 30;
      uint32_t* plane = tile + static_cast<size_t>(word) * 16 + (row[i] > 0 ? 0 : 8);
      plane[c % 8] |= 1u << within;  // group j = within / 3, bit within % 3 -> bit 3j + bit
    }
  }
}

void PackConvInt8Weights(const int8_t* trits, int out_channels, int taps, int in_channels, int nr,
                         AlignedBuffer* out, AlignedBuffer* counts) {
  const int cp = RoundUp(in_channels, 4);
  const int blocks = (out_channels + nr - 1) / nr;
  const size_t block_bytes = static_cast<size_t>(taps) * (cp / 4) * 2 * nr * 4;
  out->Reserve(block_bytes * blocks);
  uint8_t* base = out->as<uint8_t>();
  std::memset(base, 0, block_bytes * blocks);
  const int padded = blocks * nr;
  counts->Reserve(sizeof(int32_t) * 2 * padded);
  int32_t* cnt = counts->as<int32_t>();
  std::memset(cnt, 0, sizeof(int32_t) * 2 * padded);
  const int64_t k = static_cast<int64_t>(taps) * in_channels;
  for (int c = 0; c < out_channels; ++c) {
    const int8_t* row = trits + c * k;
    uint8_t* block = base + block_bytes * (c / nr);
    const int j = c % nr;
    for (int t = 0; t < taps; ++t) {
      for (int ci = 0; ci < in_channels; ++ci) {
        const int8_t v = row[static_cast<int64_t>(t) * in_channels + ci];
        if (v == 0) continue;
        const size_t step = static_cast<size_t>(t) * (cp / 4) + ci / 4;
        uint8_t* plane = block + step * 2 * nr * 4 + (v > 0 ? 0 : nr * 4);
        plane[j * 4 + ci % 4] = 1;
        cnt[(v > 0 ? 0 : padded) + c] += 1;
      }
    }
  }
}

void SnapScalesToInt8Levels(float pos, float neg, int* level_pos, int* level_neg,
                            float* level_step) {
  const float m = std::fmax(std::fabs(pos), std::fabs(neg));
  if (!(m > 0.0f) || !std::isfinite(m)) {  // both zero (the delegate rejects non-finite scales)
    *level_pos = *level_neg = 0;
    *level_step = 0.0f;
    return;
  }
  *level_pos = static_cast<int>(std::rint(127.0f * (pos / m)));
  *level_neg = static_cast<int>(std::rint(127.0f * (neg / m)));
  *level_step = m / 127.0f;
}

void PackConvLevelWeights(const TernaryWeights& w, int out_channels, int taps, int in_channels,
                          int nr, AlignedBuffer* out, AlignedBuffer* corrections,
                          AlignedBuffer* steps) {
  const int cp = RoundUp(in_channels, 4);
  const int blocks = (out_channels + nr - 1) / nr;
  const size_t block_bytes = static_cast<size_t>(taps) * (cp / 4) * nr * 4;
  out->Reserve(block_bytes * blocks);
  int8_t* base = out->as<int8_t>();
  std::memset(base, 0, block_bytes * blocks);
  const int padded = blocks * nr;
  corrections->Reserve(sizeof(int32_t) * padded);
  steps->Reserve(sizeof(float) * padded);
  int32_t* corr = corrections->as<int32_t>();
  float* step = steps->as<float>();
  std::memset(corr, 0, sizeof(int32_t) * padded);
  std::memset(step, 0, sizeof(float) * padded);
  const int64_t k = static_cast<int64_t>(taps) * in_channels;
  for (int c = 0; c < out_channels; ++c) {
    int level_pos, level_neg;
    SnapScalesToInt8Levels(w.pos_scales[c], w.neg_scales[c], &level_pos, &level_neg, &step[c]);
    const int8_t* row = w.trits + c * k;
    int8_t* block = base + block_bytes * (c / nr);
    const int j = c % nr;
    int64_t sum = 0;
    for (int t = 0; t < taps; ++t) {
      for (int ci = 0; ci < in_channels; ++ci) {
        const int8_t v = row[static_cast<int64_t>(t) * in_channels + ci];
        if (v == 0) continue;
        const int level = v > 0 ? level_pos : -level_neg;
        const size_t q = static_cast<size_t>(t) * (cp / 4) + ci / 4;
        block[q * nr * 4 + j * 4 + ci % 4] = static_cast<int8_t>(level);
        sum += level;
      }
    }
    corr[c] = static_cast<int32_t>(128 * sum);  // |sum| <= 127·K, K <= kMaxLevelRowLength
  }
}

void PackWinogradWeights(const TernaryWeights& w, int out_channels, int in_channels,
                         AlignedBuffer* out) {
  const int blocks = (out_channels + 15) / 16;
  const size_t per_position = static_cast<size_t>(blocks) * in_channels * 16;
  out->Reserve(sizeof(float) * 16 * per_position);
  float* dst = out->as<float>();
  std::memset(dst, 0, sizeof(float) * 16 * per_position);
  static const double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
  for (int c = 0; c < out_channels; ++c) {
    const int8_t* row = w.trits + static_cast<int64_t>(c) * 9 * in_channels;
    for (int ci = 0; ci < in_channels; ++ci) {
      double g[3][3];
      for (int kh = 0; kh < 3; ++kh) {
        for (int kw = 0; kw < 3; ++kw) {
          const int8_t t = row[(kh * 3 + kw) * in_channels + ci];
          g[kh][kw] =
              t > 0 ? w.pos_scales[c] : (t < 0 ? -static_cast<double>(w.neg_scales[c]) : 0.0);
        }
      }
      double gg[4][3];  // G·g
      for (int i = 0; i < 4; ++i) {
        for (int j = 0; j < 3; ++j) {
          gg[i][j] = G[i][0] * g[0][j] + G[i][1] * g[1][j] + G[i][2] * g[2][j];
        }
      }
      for (int i = 0; i < 4; ++i) {
        for (int j = 0; j < 4; ++j) {  // (G·g)·Gᵀ
          const double u = gg[i][0] * G[j][0] + gg[i][1] * G[j][1] + gg[i][2] * G[j][2];
          const int pos = i * 4 + j;
          dst[pos * per_position + (static_cast<size_t>(c / 16) * in_channels + ci) * 16 + c % 16] =
              static_cast<float>(u);
        }
      }
    }
  }
}

void ConvOffsets::Update(const OpParams& p, const ConvShape& s) {
  if (valid && in_h == s.in_height && in_w == s.in_width && out_h == s.out_height &&
      out_w == s.out_width && pad_t == s.pad_top && pad_l == s.pad_left) {
    return;
  }
  const int taps = p.kernel_height * p.kernel_width;
  const int64_t pixels = static_cast<int64_t>(s.out_height) * s.out_width;
  buf.Reserve(sizeof(int32_t) * static_cast<size_t>(pixels * taps));
  int32_t* o = buf.as<int32_t>();
  for (int oh = 0; oh < s.out_height; ++oh) {
    for (int ow = 0; ow < s.out_width; ++ow) {
      for (int kh = 0; kh < p.kernel_height; ++kh) {
        const int ih = oh * p.stride_height + kh * p.dilation_height - s.pad_top;
        for (int kw = 0; kw < p.kernel_width; ++kw) {
          const int iw = ow * p.stride_width + kw * p.dilation_width - s.pad_left;
          const bool inside = ih >= 0 && ih < s.in_height && iw >= 0 && iw < s.in_width;
          *o++ = inside ? (ih * s.in_width + iw) * p.in_channels : -1;
        }
      }
    }
  }
  valid = true;
  in_h = s.in_height;
  in_w = s.in_width;
  out_h = s.out_height;
  out_w = s.out_width;
  pad_t = s.pad_top;
  pad_l = s.pad_left;
}

}  // namespace optimized
}  // namespace core
}  // namespace ttq
