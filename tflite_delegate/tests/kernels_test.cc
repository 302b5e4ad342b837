// Optimized kernels (CreateKernel / CreateKernelForIsa) against the reference kernel, over
// shape, activation, trit density, numeric mode, thread count and ISA sweeps; plus ThreadPool.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/geometry.h"
#include "core/kernel.h"
#include "core/optimized/cpu_features.h"
#include "core/optimized/internal.h"
#include "core/reference_kernels.h"
#include "core/thread_pool.h"

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>

#include <cstdlib>
#include <iostream>
#endif

namespace ttq {
namespace core {
namespace {

using optimized::Isa;

struct Shape {
  OpKind kind;
  int cin, cout;  // fc: in_features, out_features (cout for depthwise = cin * dm)
  int kh, kw, sh, sw, dh, dw;
  bool same;
  int dm;
  int batch, h, w;  // fc: batch = rows
};

struct Case {
  Shape s;
  Activation act;
  double density;  // probability of a nonzero trit
  NumericMode mode;
  int threads;
  Isa isa;
};

const char* ActName(Activation a) {
  return a == Activation::kNone ? "none" : (a == Activation::kRelu ? "relu" : "relu6");
}

std::string CaseName(const testing::TestParamInfo<Case>& info) {
  const Case& c = info.param;
  const Shape& s = c.s;
  std::ostringstream o;
  o << info.index << "_";
  if (s.kind == OpKind::kFullyConnected) {
    o << "fc_r" << s.batch << "_in" << s.cin << "_out" << s.cout;
  } else {
    o << (s.kind == OpKind::kConv2D ? "conv" : "dw") << "_n" << s.batch << "_" << s.h << "x" << s.w
      << "x" << s.cin << "_k" << s.kh << "x" << s.kw << "_s" << s.sh << s.sw << "_d" << s.dh << s.dw
      << (s.same ? "_same" : "_valid") << "_o" << s.cout;
    if (s.kind == OpKind::kDepthwiseConv2D) o << "_m" << s.dm;
  }
  o << "_" << ActName(c.act) << (c.density < 0.5 ? "_sparse" : "_dense")
    << (c.mode == NumericMode::kExact ? "_exact" : "_int8") << "_t" << c.threads << "_"
    << optimized::IsaName(c.isa);
  return o.str();
}

void PrintTo(const Case& c, std::ostream* os) {
  *os << "{kind " << static_cast<int>(c.s.kind) << ", cin " << c.s.cin << ", cout " << c.s.cout
      << ", k " << c.s.kh << "x" << c.s.kw << ", batch/rows " << c.s.batch << "}";
}

OpParams MakeParams(const Case& c) {
  OpParams p;
  p.kind = c.s.kind;
  p.in_channels = c.s.cin;
  p.out_channels = c.s.cout;
  p.kernel_height = c.s.kh;
  p.kernel_width = c.s.kw;
  p.stride_height = c.s.sh;
  p.stride_width = c.s.sw;
  p.dilation_height = c.s.dh;
  p.dilation_width = c.s.dw;
  p.padding_same = c.s.same;
  p.depth_multiplier = c.s.dm;
  p.activation = c.act;
  return p;
}

struct Weights {
  std::vector<int8_t> trits;
  std::vector<float> pos, neg, bias;
  TernaryWeights view() const { return {trits.data(), pos.data(), neg.data(), bias.data()}; }
};

Weights RandomWeights(int cout, int64_t k, double density, std::mt19937* rng) {
  Weights w;
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::uniform_real_distribution<float> scale(0.25f, 2.0f), bias(-1.0f, 1.0f);
  w.trits.resize(static_cast<size_t>(cout) * k);
  for (auto& t : w.trits) t = u(*rng) < density ? (u(*rng) < 0.5 ? 1 : -1) : 0;
  for (int c = 0; c < cout; ++c) {
    w.pos.push_back(scale(*rng));
    // Scales are free floats: make a few negative or zero.
    w.neg.push_back(c % 7 == 3 ? -scale(*rng) : (c % 11 == 5 ? 0.0f : scale(*rng)));
    w.bias.push_back(bias(*rng));
  }
  return w;
}

// The weights with s⁺ and s⁻ rounded to the nearest multiple of max(|s⁺|, |s⁻|)/127 per
// channel, written out independently of PackConvLevelWeights.
Weights SnappedToInt8Levels(const Weights& w) {
  Weights s = w;
  for (size_t c = 0; c < w.pos.size(); ++c) {
    const float m = std::max(std::fabs(w.pos[c]), std::fabs(w.neg[c]));
    if (m == 0.0f) continue;
    const float step = m / 127.0f;
    s.pos[c] = step * std::rint(127.0f * (w.pos[c] / m));
    s.neg[c] = step * std::rint(127.0f * (w.neg[c] / m));
  }
  return s;
}

// Σ over taps of |w|·|x| per output element: the scale of the rounding error, computed with
// the reference kernel on |x| with |scales| and zero bias.
std::vector<float> Magnitude(const OpParams& p, const Weights& w, const std::vector<float>& x,
                             int rows, const ConvShape* shape, size_t out_size) {
  Weights a = w;
  for (auto& t : a.trits) t = t != 0 ? 1 : 0;
  for (size_t c = 0; c < a.pos.size(); ++c) {
    a.pos[c] = std::max(std::fabs(w.pos[c]), std::fabs(w.neg[c]));
    a.bias[c] = std::fabs(w.bias[c]);
  }
  OpParams pa = p;
  pa.activation = Activation::kNone;
  std::vector<float> ax(x.size()), out(out_size);
  for (size_t i = 0; i < x.size(); ++i) ax[i] = std::fabs(x[i]);
  auto ref = CreateReferenceKernel(pa, a.view(), NumericMode::kExact);
  if (shape) {
    ref->RunConv(*shape, ax.data(), out.data(), nullptr);
  } else {
    ref->RunFullyConnected(rows, ax.data(), out.data(), nullptr);
  }
  return out;
}

class KernelTest : public testing::TestWithParam<Case> {};

TEST_P(KernelTest, MatchesReference) {
  const Case& c = GetParam();
  if (!optimized::IsaSupported(c.isa)) {
    GTEST_SKIP() << "CPU lacks " << optimized::IsaName(c.isa);
  }
  const OpParams p = MakeParams(c);
  std::mt19937 rng(1234 + c.s.cin * 7 + c.s.cout * 13 + c.s.h);
  const int64_t k = RowLength(p);
  const Weights w = RandomWeights(p.out_channels, k, c.density, &rng);

  std::vector<std::unique_ptr<TernaryKernel>> kernels;
  kernels.push_back(optimized::CreateKernelForIsa(p, w.view(), c.mode, c.isa));
  ASSERT_NE(kernels[0], nullptr) << "no " << optimized::IsaName(c.isa) << " kernel";
#if defined(__x86_64__) || defined(_M_X64)
  // Alternative AVX2 conv kernels that CreateKernel does not pick (only on x86-64 builds).
  if (p.kind == OpKind::kConv2D && c.mode == NumericMode::kFastInt8 && c.isa == Isa::kAvx2) {
    // The alternative fast conv kernel (int8 vpmaddubsw), not the default on AVX2.
    kernels.push_back(optimized::CreateConvInt8Avx2(p, w.view()));
  }
  if (p.kind == OpKind::kConv2D && c.isa == Isa::kAvx2 &&
      std::string(kernels[0]->Name()).find("winograd") != std::string::npos) {
    // The direct GEMM that Winograd replaces for 3x3 stride-1 convs.
    kernels.push_back(optimized::CreateConvDequantAvx2(p, w.view(), c.mode));
  }
  if (p.kind == OpKind::kConv2D && c.mode == NumericMode::kFastInt8 && c.isa == Isa::kAvx512) {
    // The two-plane VNNI kernel that the w8a8 one replaces (bit-exact fast mode).
    if (auto two_plane = optimized::CreateConvInt8TwoPlaneAvx512(p, w.view())) {
      kernels.push_back(std::move(two_plane));
    }
  }
  if (p.kind == OpKind::kConv2D && c.mode == NumericMode::kExact && c.isa == Isa::kAvx512 &&
      optimized::IsaSupported(Isa::kAvx512)) {
    // The padded direct float conv, also where Winograd or the indirect GEMM is picked.
    auto padded = optimized::CreateConvPaddedF32Avx512(p, w.view());
    if (padded && std::string(padded->Name()) != kernels[0]->Name()) {
      kernels.push_back(std::move(padded));
    }
  }
#endif
  auto ref = CreateReferenceKernel(p, w.view(), c.mode);
  // The w8a8 kernels' contract: the reference's fast mode on s⁺/s⁻ snapped per channel to the
  // grid of max(|s⁺|, |s⁻|)/127 (kernel_layout.md §4).
  const Weights snapped = SnappedToInt8Levels(w);
  auto ref_snapped = CreateReferenceKernel(p, snapped.view(), c.mode);
  ThreadPool pool(c.threads);

  std::vector<float> x;
  std::vector<float> y, y_ref, y_ref_snapped, mag;
  ConvShape shape;
  const bool conv = p.kind != OpKind::kFullyConnected;
  if (conv) {
    std::string error;
    ASSERT_TRUE(ComputeConvShape(p, c.s.batch, c.s.h, c.s.w, &shape, &error)) << error;
    x.resize(static_cast<size_t>(c.s.batch) * c.s.h * c.s.w * c.s.cin);
  } else {
    x.resize(static_cast<size_t>(c.s.batch) * c.s.cin);
  }
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (auto& v : x) v = nd(rng);
  if (conv && c.s.batch > 1) {
    // Second image all zeros: fast mode's scale is 0 there, the output is act(bias).
    const size_t image = x.size() / c.s.batch;
    std::fill(x.begin() + image, x.begin() + 2 * image, 0.0f);
  }
  const size_t out_size =
      conv ? static_cast<size_t>(shape.batch) * shape.out_height * shape.out_width * p.out_channels
           : static_cast<size_t>(c.s.batch) * p.out_channels;
  y_ref.assign(out_size, 0.0f);
  y_ref_snapped.assign(out_size, 0.0f);
  if (conv) {
    ref->RunConv(shape, x.data(), y_ref.data(), nullptr);
    ref_snapped->RunConv(shape, x.data(), y_ref_snapped.data(), nullptr);
  } else {
    ref->RunFullyConnected(c.s.batch, x.data(), y_ref.data(), nullptr);
    ref_snapped->RunFullyConnected(c.s.batch, x.data(), y_ref_snapped.data(), nullptr);
  }
  mag = Magnitude(p, w, x, c.s.batch, conv ? &shape : nullptr, out_size);
  for (auto& kernel : kernels) {
    y.assign(out_size, std::nanf(""));
    // Run twice: the second run reuses cached indirection and scratch buffers.
    for (int run = 0; run < 2; ++run) {
      if (conv) {
        kernel->RunConv(shape, x.data(), y.data(), &pool);
      } else {
        kernel->RunFullyConnected(c.s.batch, x.data(), y.data(), &pool);
      }
    }
    const bool w8a8 = std::string(kernel->Name()).find("w8a8") != std::string::npos;
    const std::vector<float>& want = w8a8 ? y_ref_snapped : y_ref;
    int bad = 0;
    for (size_t i = 0; i < out_size; ++i) {
      const double tol = 1e-5 * mag[i] + 1e-6;
      if (!(std::fabs(static_cast<double>(y[i]) - want[i]) <= tol)) {
        if (++bad <= 5) {
          ADD_FAILURE() << kernel->Name() << " element " << i << ": got " << y[i] << ", reference "
                        << want[i] << (w8a8 ? " (snapped scales)" : "") << ", tolerance " << tol;
        }
      }
    }
    EXPECT_EQ(bad, 0) << kernel->Name() << ": of " << out_size << " outputs";
    if (c.threads > 1) {
      // Every output is computed alike whatever the thread count, bit for bit: the delegate
      // picks, per graph and by timing, between its pool and the calling thread alone
      // (core/thread_choice.h), and that choice must never change a result.
      ThreadPool three(3);
      for (ThreadPool* other : {static_cast<ThreadPool*>(nullptr), &three}) {
        std::vector<float> y_other(out_size, std::nanf(""));
        if (conv) {
          kernel->RunConv(shape, x.data(), y_other.data(), other);
        } else {
          kernel->RunFullyConnected(c.s.batch, x.data(), y_other.data(), other);
        }
        EXPECT_EQ(std::memcmp(y.data(), y_other.data(), sizeof(float) * out_size), 0)
            << kernel->Name() << ": " << c.threads << " threads and "
            << (other ? other->num_threads() : 1) << " differ";
      }
    }
  }
}

Shape Conv(int batch, int h, int w, int cin, int cout, int kh, int kw, int s, int d, bool same) {
  return {OpKind::kConv2D, cin, cout, kh, kw, s, s, d, d, same, 1, batch, h, w};
}
Shape Depthwise(int batch, int h, int w, int cin, int dm, int kh, int kw, int s, int d, bool same) {
  return {OpKind::kDepthwiseConv2D, cin, cin * dm, kh, kw, s, s, d, d, same, dm, batch, h, w};
}
Shape Fc(int rows, int in, int out) {
  return {OpKind::kFullyConnected, in, out, 1, 1, 1, 1, 1, 1, false, 1, rows, 1, 1};
}

std::vector<Shape> Shapes() {
  std::vector<Shape> v = {
      Conv(1, 8, 8, 16, 16, 3, 3, 1, 1, true),     // ResNet-20 block
      Conv(2, 9, 11, 3, 17, 3, 3, 2, 1, true),     // odd sizes, stride 2, batch 2
      Conv(1, 7, 7, 5, 33, 1, 1, 1, 1, false),     // 1x1
      Conv(1, 10, 9, 7, 20, 3, 3, 1, 2, true),     // dilation 2
      Conv(1, 11, 12, 13, 64, 5, 3, 2, 1, false),  // non-square kernel, VALID, stride 2
      Conv(1, 6, 5, 32, 70, 3, 3, 1, 1, false),    // channels not multiple of 16
      Conv(3, 5, 5, 64, 16, 1, 1, 2, 1, true),     // 1x1 stride 2 (ResNet shortcut), batch 3
      Conv(1, 16, 16, 16, 32, 3, 3, 2, 1, true),   // ResNet-20 downsampling
      Conv(2, 7, 9, 9, 20, 3, 3, 1, 1, true),      // Winograd: odd output, C_in % 8 != 0
      Conv(1, 5, 5, 8, 16, 3, 3, 1, 1, false),     // Winograd: 3x3 output, partial tiles
      Conv(1, 4, 4, 16, 48, 3, 3, 1, 1, false),    // Winograd: 1 tile, split by channels
      Conv(2, 23, 19, 20, 16, 3, 3, 1, 1,
           true),  // image > 8k elements: quantize split over threads
      Conv(2, 13, 21, 16, 40, 3, 3, 1, 2, true),  // padded kernels: dilation 2, 3 blocks of 16
      Conv(1, 9, 35, 8, 16, 5, 5, 1, 1, false),   // padded kernels: rows > 16 pixels, VALID
      Conv(1, 12, 12, 32, 48, 3, 3, 2, 1, true),  // padded kernels: stride 2, C_in 32
      Conv(1, 20, 18, 16, 16, 3, 3, 1, 8, true),  // extent 17: too wide for the padded kernels
      Conv(1, 5, 5, 2, 3, 1, 4, 2, 2, true),  // fuzz_one_op: C_in < 4, pads wider than the input
      Depthwise(1, 8, 8, 16, 1, 3, 3, 1, 1, true),
      Depthwise(2, 9, 7, 13, 1, 3, 3, 2, 1, true),
      Depthwise(1, 10, 10, 5, 3, 3, 3, 1, 2, false),  // depth multiplier 3, dilation 2
      Depthwise(1, 7, 7, 12, 2, 5, 5, 1, 1, true),
      Depthwise(1, 6, 6, 9, 1, 1, 1, 1, 1, false),
      Fc(1, 1, 1),
      Fc(1, 100, 37),
      Fc(3, 257, 65),
      Fc(1, 1000, 130),
      Fc(2, 4097, 19),
      Fc(5, 300, 8),
      Fc(1, 256, 16),
      Fc(1, 9216, 40),  // > 16 blocks: int16 -> int32 flush
  };
  return v;
}

std::vector<Case> Cases() {
  std::vector<Case> cases;
  const Activation acts[] = {Activation::kNone, Activation::kRelu, Activation::kRelu6};
  int i = 0;
  for (const Shape& s : Shapes()) {
    for (double density : {0.15, 0.9}) {
      const Activation act = acts[(i++) % 3];
      for (NumericMode mode : {NumericMode::kExact, NumericMode::kFastInt8}) {
        for (int threads : {1, 2}) {
          for (Isa isa : {Isa::kAvx2, Isa::kAvx512, Isa::kNeon, Isa::kNeonDotprod}) {
            cases.push_back({s, act, density, mode, threads, isa});
          }
        }
      }
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Sweep, KernelTest, testing::ValuesIn(Cases()), CaseName);

TEST(CreateKernelTest, PicksBestFamilyAndFallsBack) {
  OpParams p;
  p.kind = OpKind::kFullyConnected;
  p.in_channels = 10;
  p.out_channels = 3;
  std::vector<int8_t> trits(30, 1);
  std::vector<float> ones(3, 1.0f), zeros(3, 0.0f);
  TernaryWeights w{trits.data(), ones.data(), ones.data(), zeros.data()};
  auto k = CreateKernel(p, w, NumericMode::kExact);
  ASSERT_NE(k, nullptr);
  const std::string name = k->Name();
  if (optimized::BestIsa() == Isa::kReference) {
    EXPECT_EQ(name, "reference");
  } else {
    // Exact-mode FC is shared down a level: NEON dotprod runs the plain NEON kernel, AVX-512
    // the AVX2 triplet kernel (faster than masked adds over bit planes; kernel_layout.md §2).
    Isa family = optimized::BestIsa();
    if (family == Isa::kNeonDotprod) family = Isa::kNeon;
    if (family == Isa::kAvx512) family = Isa::kAvx2;
    EXPECT_NE(name.find(optimized::IsaName(family)), std::string::npos) << name;
  }
  std::vector<float> x(10, 1.5f), y(3);
  k->RunFullyConnected(1, x.data(), y.data(), nullptr);
  for (float v : y) EXPECT_FLOAT_EQ(v, 15.0f);
}

TEST(CpuFeaturesTest, ConsistentLevels) {
  const auto& f = optimized::GetCpuFeatures();
  if (optimized::IsaSupported(Isa::kAvx512)) {
    EXPECT_TRUE(f.avx512f && f.avx512bw && f.avx512vl);
  }
  if (optimized::IsaSupported(Isa::kAvx2)) {
    EXPECT_TRUE(f.avx2 && f.fma);
  }
  EXPECT_TRUE(optimized::IsaSupported(Isa::kReference));
}

// Accumulator limits: every input at ±max|x| (q = ±127, u = q + 128 = 255 or 1) and every weight
// nonzero, over rows long enough to cross each kernel's widening points (u8 → u16 every 16
// taps, u16/int16 → int32 every 256 taps or 64 steps). Random inputs never get near them. Fast
// mode only: exact mode has no integer accumulators (and float sums of thousands of same-sign
// terms drift past the sweep's 1e-5 relative tolerance, as any float GEMM does).
TEST(KernelLimitsTest, SaturatedInputsAndAllNonzeroWeights) {
  const Shape shapes[] = {
      Fc(2, 9216, 33),
      Depthwise(2, 18, 18, 3, 2, 17, 17, 1, 1, true),  // 289 taps
      Conv(2, 4, 5, 300, 9, 3, 3, 1, 1, true),
      // w8a8 (AVX-512 VNNI): K = 9·7280 = 65520, the longest row it takes (255·127·K < 2^31),
      // and K = 9·7284 = 65556, one step past it, where the two-plane kernel takes over.
      Conv(2, 3, 3, 7280, 3, 3, 3, 1, 1, true),
      Conv(2, 3, 3, 7284, 3, 3, 3, 1, 1, true),
  };
  int families = 0;
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512, Isa::kNeon, Isa::kNeonDotprod}) {
    if (!optimized::IsaSupported(isa)) continue;
    ++families;
    for (const Shape& shape : shapes) {
      if (shape.cin > 4096 && !(isa == Isa::kAvx512 && optimized::GetCpuFeatures().avx512vnni)) {
        // The w8a8 row-length cases. The float-GEMM fast kernels (int8dq, Winograd) are exact
        // only while their float sums stay below 2^24, which these rows pass.
        continue;
      }
      {
        const NumericMode mode = NumericMode::kFastInt8;
        const Case c{shape, Activation::kNone, 1.0, mode, 2, isa};
        const OpParams p = MakeParams(c);
        const int64_t k = RowLength(p);
        Weights w;
        for (int ch = 0; ch < p.out_channels; ++ch) {
          // Channels alternate all +1 / all −1 (and one mixed), so both planes saturate.
          for (int64_t t = 0; t < k; ++t) {
            w.trits.push_back(ch % 3 == 2 ? (t % 2 ? 1 : -1) : (ch % 3 == 0 ? 1 : -1));
          }
          w.pos.push_back(1.0f + 0.01f * ch);
          w.neg.push_back(0.5f + 0.01f * ch);
          w.bias.push_back(0.25f);
        }
        const bool conv = p.kind != OpKind::kFullyConnected;
        ConvShape cs;
        std::string error;
        if (conv) {
          ASSERT_TRUE(ComputeConvShape(p, shape.batch, shape.h, shape.w, &cs, &error)) << error;
        }
        const int64_t per_unit =
            conv ? static_cast<int64_t>(shape.h) * shape.w * shape.cin : shape.cin;
        std::vector<float> x(static_cast<size_t>(per_unit * shape.batch));
        // Unit 0 all +3 (q = +127), unit 1 all −3 (q = −127).
        for (size_t i = 0; i < x.size(); ++i)
          x[i] = static_cast<int64_t>(i) < per_unit ? 3.0f : -3.0f;
        const size_t out_size =
            conv ? static_cast<size_t>(cs.batch) * cs.out_height * cs.out_width * p.out_channels
                 : static_cast<size_t>(shape.batch) * p.out_channels;
        std::vector<float> y(out_size, std::nanf("")), y_ref(out_size);
        auto kernel = optimized::CreateKernelForIsa(p, w.view(), mode, isa);
        ASSERT_NE(kernel, nullptr);
        const bool w8a8 = std::string(kernel->Name()).find("w8a8") != std::string::npos;
        if (isa == Isa::kAvx512 && p.kind == OpKind::kConv2D &&
            optimized::GetCpuFeatures().avx512vnni) {
          // The w8a8 kernel up to its row-length limit, the two-plane one past it.
          EXPECT_EQ(w8a8, RowLength(p) <= 65536) << kernel->Name() << ", K = " << RowLength(p);
        }
        const Weights oracle = w8a8 ? SnappedToInt8Levels(w) : w;
        auto ref = CreateReferenceKernel(p, oracle.view(), mode);
        ThreadPool pool(2);
        if (conv) {
          ref->RunConv(cs, x.data(), y_ref.data(), nullptr);
          kernel->RunConv(cs, x.data(), y.data(), &pool);
        } else {
          ref->RunFullyConnected(shape.batch, x.data(), y_ref.data(), nullptr);
          kernel->RunFullyConnected(shape.batch, x.data(), y.data(), &pool);
        }
        const std::vector<float> mag =
            Magnitude(p, w, x, shape.batch, conv ? &cs : nullptr, out_size);
        int bad = 0;
        for (size_t i = 0; i < out_size; ++i) {
          if (!(std::fabs(static_cast<double>(y[i]) - y_ref[i]) <= 1e-5 * mag[i] + 1e-6) &&
              ++bad <= 3) {
            ADD_FAILURE() << kernel->Name() << " element " << i << ": got " << y[i]
                          << ", reference " << y_ref[i];
          }
        }
        EXPECT_EQ(bad, 0) << kernel->Name() << " (" << optimized::IsaName(isa) << ")";
      }
    }
  }
  if (families == 0) GTEST_SKIP() << "no optimized kernel family on this CPU";
}

#if defined(__aarch64__) && defined(__linux__)
// Which NEON kernel each op and mode gets on this CPU, printed (make test-aarch64 shows it per
// qemu -cpu model) and asserted against the CPU's own HWCAP_ASIMDDP bit, read here
// independently of cpu_features.cc. TTQ_EXPECTED_ISA (set by the Makefile per CPU model) also
// pins the expected family, so a detection that is wrong on both models cannot pass.
TEST(NeonDispatchTest, SelectsFamilyFromHwcap) {
  const bool dotprod = (getauxval(AT_HWCAP) & (1ul << 20)) != 0;
  const Isa expected = dotprod ? Isa::kNeonDotprod : Isa::kNeon;
  EXPECT_EQ(optimized::IsaName(optimized::BestIsa()), std::string(optimized::IsaName(expected)));
  if (const char* env = std::getenv("TTQ_EXPECTED_ISA")) {
    EXPECT_EQ(std::string(optimized::IsaName(optimized::BestIsa())), env);
  }
  EXPECT_TRUE(optimized::IsaSupported(Isa::kNeon));
  EXPECT_EQ(optimized::IsaSupported(Isa::kNeonDotprod), dotprod);
  EXPECT_FALSE(optimized::IsaSupported(Isa::kAvx2));
  std::cout << "[ kernels  ] HWCAP_ASIMDDP=" << dotprod
            << " best family=" << optimized::IsaName(optimized::BestIsa()) << "\n";
  struct Expect {
    Shape shape;
    NumericMode mode;
    const char* name;
  };
  const Expect expects[] = {
      {Conv(1, 8, 8, 16, 16, 3, 3, 1, 1, true), NumericMode::kExact, "neon_conv_f32"},
      {Conv(1, 8, 8, 16, 16, 3, 3, 1, 1, true), NumericMode::kFastInt8,
       dotprod ? "neon_dotprod_conv_sdot_int8" : "neon_conv_smlal_int8"},
      {Depthwise(1, 8, 8, 16, 1, 3, 3, 1, 1, true), NumericMode::kExact, "neon_depthwise_f32"},
      {Depthwise(1, 8, 8, 16, 1, 3, 3, 1, 1, true), NumericMode::kFastInt8,
       "neon_depthwise_smlal_int8"},
      {Fc(1, 100, 37), NumericMode::kExact, "neon_fc_nibble_lut_f32"},
      {Fc(1, 100, 37), NumericMode::kFastInt8,
       dotprod ? "neon_dotprod_fc_bitsliced_sdot_int8" : "neon_fc_nibble_lut_int8"},
  };
  for (const Expect& e : expects) {
    Case c{e.shape, Activation::kNone, 0.5, e.mode, 1, expected};
    const OpParams p = MakeParams(c);
    std::mt19937 rng(7);
    const Weights w = RandomWeights(p.out_channels, RowLength(p), 0.5, &rng);
    auto k = CreateKernel(p, w.view(), e.mode);
    const char* op = p.kind == OpKind::kConv2D
                         ? "TTQ_CONV_2D"
                         : (p.kind == OpKind::kDepthwiseConv2D ? "TTQ_DEPTHWISE_CONV_2D"
                                                               : "TTQ_FULLY_CONNECTED");
    std::cout << "[ kernels  ] " << op << (e.mode == NumericMode::kExact ? " exact" : " fast")
              << " -> " << k->Name() << "\n";
    EXPECT_EQ(std::string(k->Name()), e.name) << op;
  }
}
#endif

TEST(ThreadPoolTest, CoversRangeExactlyOnce) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.num_threads(), threads);
    for (int n : {1, 2, 3, 7, 100, 1001}) {
      std::vector<std::atomic<int>> hits(n);
      std::atomic<int> calls{0};
      pool.ParallelFor(n, [&](int b, int e) {
        EXPECT_LT(b, e);
        ++calls;
        for (int i = b; i < e; ++i) hits[i]++;
      });
      for (int i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "n=" << n << " i=" << i;
      EXPECT_LE(calls.load(), n);
      if (threads == 1) {
        EXPECT_EQ(calls.load(), 1);
      }
    }
  }
}

TEST(ThreadPoolTest, ZeroItemsAndNestedCalls) {
  ThreadPool pool(2);
  bool called = false;
  pool.ParallelFor(0, [&](int, int) { called = true; });
  EXPECT_FALSE(called);
  std::atomic<int> total{0};
  pool.ParallelFor(4, [&](int b, int e) {
    for (int i = b; i < e; ++i) {
      pool.ParallelFor(10, [&](int bb, int ee) { total += ee - bb; });  // runs inline
    }
  });
  EXPECT_EQ(total.load(), 40);
}

TEST(ThreadPoolTest, ManyShortJobs) {
  ThreadPool pool(2);
  int64_t sum = 0;
  std::vector<int64_t> part(2);
  for (int it = 0; it < 2000; ++it) {
    pool.ParallelFor(2, [&](int b, int e) {
      for (int i = b; i < e; ++i) part[i] += i + 1;
    });
  }
  sum = part[0] + part[1];
  EXPECT_EQ(sum, 2000 * 3);
}

TEST(ThreadPoolTest, StragglerBackOffRunsOnTheCaller) {
  // A worker that holds a chunk far longer than the caller's chunks (as a preempted worker
  // does) puts the pool into back-off: the next jobs run on the calling thread alone, and
  // still cover their range exactly once.
  ThreadPool pool(2);
  const std::thread::id caller = std::this_thread::get_id();
  bool stalled = false;
  for (int attempt = 0; attempt < 50 && !stalled; ++attempt) {
    std::atomic<bool> slow_done{false};
    pool.ParallelFor(8, [&](int b, int e) {
      if (std::this_thread::get_id() != caller && !slow_done.exchange(true)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      (void)b;
      (void)e;
    });
    stalled = slow_done.load();  // a worker took a chunk and stalled: back-off is on
  }
  std::vector<std::atomic<int>> hits(100);
  std::atomic<int> off_caller{0};
  pool.ParallelFor(100, [&](int b, int e) {
    if (std::this_thread::get_id() != caller) ++off_caller;
    for (int i = b; i < e; ++i) hits[i]++;
  });
  for (int i = 0; i < 100; ++i) ASSERT_EQ(hits[i].load(), 1) << i;
  // (If the OS never ran the worker in time for a chunk, there was nothing to back off from.)
  if (stalled) {
    EXPECT_EQ(off_caller.load(), 0) << "expected the back-off to run the job on the caller";
  }
}

}  // namespace
}  // namespace core
}  // namespace ttq
