// Microbenchmark of the optimized ternary kernels on the layers of CIFAR ResNet-20 and the
// AlexNet FC stack (batch 1): median time per layer and per network, for every ISA family the
// CPU supports, both numeric modes, 1 and 2 threads, next to the reference kernel and a plain
// float GEMV (the dense baseline a ternary FC competes with).
//
//   kernels_benchmark [--runs N] [--threads 1,2] [--no-reference] [--min]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/geometry.h"
#include "core/kernel.h"
#include "core/optimized/cpu_features.h"
#include "core/optimized/internal.h"
#include "core/reference_kernels.h"
#include "core/thread_pool.h"

using namespace ttq::core;  // NOLINT
using ttq::core::optimized::Isa;

namespace {

struct Layer {
  std::string name;
  OpParams p;
  int h = 1, w = 1;  // conv input size
  int count = 1;     // how many times the network uses this layer shape
};

Layer ConvLayer(const char* name, int h, int cin, int cout, int k, int s, int count) {
  Layer l;
  l.name = name;
  l.p.kind = OpKind::kConv2D;
  l.p.in_channels = cin;
  l.p.out_channels = cout;
  l.p.kernel_height = l.p.kernel_width = k;
  l.p.stride_height = l.p.stride_width = s;
  l.p.padding_same = true;
  l.p.activation = Activation::kRelu;
  l.h = l.w = h;
  l.count = count;
  return l;
}

Layer FcLayer(const char* name, int in, int out) {
  Layer l;
  l.name = name;
  l.p.kind = OpKind::kFullyConnected;
  l.p.in_channels = in;
  l.p.out_channels = out;
  l.p.activation = Activation::kRelu;
  return l;
}

bool g_use_min = false;  // --min: report the fastest run (robust on a shared machine)

double MedianMs(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return g_use_min ? v[0] : v[v.size() / 2];
}

struct Data {
  std::vector<int8_t> trits;
  std::vector<float> pos, neg, bias, x, y;
  ConvShape shape;
};

Data MakeData(const Layer& l) {
  std::mt19937 rng(42);
  const int64_t k = RowLength(l.p);
  Data d;
  std::uniform_int_distribution<int> t(0, 9);
  d.trits.resize(static_cast<size_t>(k) * l.p.out_channels);
  for (auto& v : d.trits) {
    const int r = t(rng);
    v = r < 3 ? 1 : (r < 6 ? -1 : 0);  // ~60% nonzero, typical of TTQ
  }
  d.pos.assign(l.p.out_channels, 0.7f);
  d.neg.assign(l.p.out_channels, 0.6f);
  d.bias.assign(l.p.out_channels, 0.1f);
  std::normal_distribution<float> nd;
  if (l.p.kind == OpKind::kFullyConnected) {
    d.x.resize(l.p.in_channels);
    d.y.resize(l.p.out_channels);
  } else {
    std::string err;
    ComputeConvShape(l.p, 1, l.h, l.w, &d.shape, &err);
    d.x.resize(static_cast<size_t>(l.h) * l.w * l.p.in_channels);
    d.y.resize(static_cast<size_t>(d.shape.out_height) * d.shape.out_width * l.p.out_channels);
  }
  for (auto& v : d.x) v = nd(rng);
  return d;
}

double TimeKernel(TernaryKernel* k, const Layer& l, Data* d, ThreadPool* pool, int runs) {
  std::vector<double> t;
  for (int i = 0; i < runs + 3; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    if (l.p.kind == OpKind::kFullyConnected) {
      k->RunFullyConnected(1, d->x.data(), d->y.data(), pool);
    } else {
      k->RunConv(d->shape, d->x.data(), d->y.data(), pool);
    }
    const auto t1 = std::chrono::steady_clock::now();
    if (i >= 3) t.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  return MedianMs(t);
}

// Dense float GEMV y = W x (W [out][in] row-major), parallel over outputs: what a float FC
// layer costs when its weights are 32 bits.
double TimeFloatGemv(const Layer& l, ThreadPool* pool, int runs) {
  const int in = l.p.in_channels, out = l.p.out_channels;
  std::vector<float> w(static_cast<size_t>(in) * out, 0.01f), x(in, 1.0f), y(out);
  std::vector<double> t;
  for (int i = 0; i < runs + 3; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    ParallelFor(pool, out, [&](int b, int e) {
      for (int c = b; c < e; ++c) {
        const float* row = w.data() + static_cast<size_t>(c) * in;
        float s = 0.0f;
        for (int k = 0; k < in; ++k) s += row[k] * x[k];
        y[c] = s;
      }
    });
    const auto t1 = std::chrono::steady_clock::now();
    if (i >= 3) t.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  return MedianMs(t);
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 50;
  std::vector<int> threads = {1, 2};
  bool reference = true;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--runs") && i + 1 < argc) runs = std::atoi(argv[++i]);
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) {
      threads.clear();
      for (const char* s = argv[++i]; *s;) {
        threads.push_back(std::atoi(s));
        while (*s && *s != ',') ++s;
        if (*s == ',') ++s;
      }
    }
    if (!std::strcmp(argv[i], "--no-reference")) reference = false;
    if (!std::strcmp(argv[i], "--min")) g_use_min = true;
  }
  const std::vector<Layer> resnet = {
      ConvLayer("conv 32x32 3->16", 32, 3, 16, 3, 1, 1),
      ConvLayer("conv 32x32 16->16", 32, 16, 16, 3, 1, 6),
      ConvLayer("conv 32x32 16->32 s2", 32, 16, 32, 3, 2, 1),
      ConvLayer("conv1x1 32x32 16->32 s2", 32, 16, 32, 1, 2, 1),
      ConvLayer("conv 16x16 32->32", 16, 32, 32, 3, 1, 5),
      ConvLayer("conv 16x16 32->64 s2", 16, 32, 64, 3, 2, 1),
      ConvLayer("conv1x1 16x16 32->64 s2", 16, 32, 64, 1, 2, 1),
      ConvLayer("conv 8x8 64->64", 8, 64, 64, 3, 1, 5),
  };
  const std::vector<Layer> alexnet = {FcLayer("fc 9216->4096", 9216, 4096),
                                      FcLayer("fc 4096->4096", 4096, 4096),
                                      FcLayer("fc 4096->1000", 4096, 1000)};
  std::vector<Isa> isas;
  for (Isa isa : {Isa::kAvx2, Isa::kAvx512}) {
    if (optimized::IsaSupported(isa)) isas.push_back(isa);
  }
  std::printf("%s of %d runs, batch 1, ms\n", g_use_min ? "min" : "median", runs);
  for (const auto* net : {&resnet, &alexnet}) {
    const bool is_resnet = net == &resnet;
    std::printf("\n== %s ==\n",
                is_resnet ? "CIFAR ResNet-20 ternary convs (x count)" : "AlexNet FC stack");
    for (int nt : threads) {
      ThreadPool pool(nt);
      std::printf("-- threads %d --\n", nt);
      std::printf("%-26s %5s", "layer", "count");
      for (Isa isa : isas) {
        std::printf(" %10s-f32 %10s-i8", optimized::IsaName(isa), optimized::IsaName(isa));
      }
      if (reference) std::printf(" %12s", "reference");
      if (!is_resnet) std::printf(" %12s", "float-gemv");
      std::printf("\n");
      std::vector<double> total(2 * isas.size() + 2, 0.0);
      for (const Layer& l : *net) {
        Data d = MakeData(l);
        TernaryWeights w{d.trits.data(), d.pos.data(), d.neg.data(), d.bias.data()};
        std::printf("%-26s %5d", l.name.c_str(), l.count);
        size_t col = 0;
        for (Isa isa : isas) {
          for (NumericMode mode : {NumericMode::kExact, NumericMode::kFastInt8}) {
            auto k = optimized::CreateKernelForIsa(l.p, w, mode, isa);
            if (!k) {
              std::printf(" %14s", "n/a");
              ++col;
              continue;
            }
            const double ms = TimeKernel(k.get(), l, &d, &pool, runs);
            total[col++] += ms * l.count;
            std::printf(" %14.4f", ms);
          }
        }
        if (reference) {
          auto k = CreateReferenceKernel(l.p, w, NumericMode::kExact);
          const double ms = TimeKernel(k.get(), l, &d, nullptr, std::max(1, runs / 10));
          total[col] += ms * l.count;
          std::printf(" %12.3f", ms);
        }
        ++col;
        if (!is_resnet) {
          const double ms = TimeFloatGemv(l, &pool, std::max(3, runs / 5));
          total[col] += ms;
          std::printf(" %12.3f", ms);
        }
        std::printf("\n");
      }
      std::printf("%-26s %5s", "TOTAL", "");
      for (size_t i = 0; i < 2 * isas.size(); ++i) std::printf(" %14.4f", total[i]);
      if (reference) std::printf(" %12.3f", total[2 * isas.size()]);
      if (!is_resnet) std::printf(" %12.3f", total[2 * isas.size() + 1]);
      std::printf("\n");
    }
  }
  return 0;
}
