// Several delegate instances running TTQ ops at the same time, each with its own thread pool
// (num_threads = 2), on hand-built graphs (fuzz/one_op_graph.h); and one graph shared by all
// threads under a mutex. Results must equal a single-threaded run bit for bit. Run under
// ThreadSanitizer by `make test-tsan` (CMake option TTQ_TSAN), where a data race fails the test.
#include <gtest/gtest.h>

#include <mutex>
#include <thread>
#include <vector>

#include "../fuzz/flexbuffer_writer.h"
#include "../fuzz/one_op_graph.h"
#include "core/packing.h"
#include "ttq_delegate/ttq_delegate.h"

namespace ttq {
namespace {

using fuzz::FlexEntry;
using fuzz::OneOpGraph;
using fuzz::TensorSpec;

constexpr int kBatch = 2, kHeight = 9, kWidth = 7, kCin = 5, kCout = 6, kKernel = 3;

std::vector<uint8_t> ConvOptions() {
  std::vector<FlexEntry> e;
  auto add = [&](const char* key, int64_t v) {
    FlexEntry f;
    f.key = key;
    f.int_value = v;
    e.push_back(f);
  };
  FlexEntry act;
  act.kind = FlexEntry::Kind::kString;
  act.key = "activation";
  act.string_value = "RELU";
  e.push_back(act);
  add("dilation_height", 1);
  add("dilation_width", 1);
  add("in_channels", kCin);
  add("kernel_height", kKernel);
  add("kernel_width", kKernel);
  add("out_channels", kCout);
  FlexEntry pad = act;
  pad.key = "padding";
  pad.string_value = "SAME";
  e.push_back(pad);
  add("stride_height", 1);
  add("stride_width", 2);
  add("version", 1);
  return fuzz::FlexMapWriter().Write(e);
}

template <typename T>
std::vector<uint8_t> Bytes(const std::vector<T>& v) {
  const auto* p = reinterpret_cast<const uint8_t*>(v.data());
  return std::vector<uint8_t>(p, p + v.size() * sizeof(T));
}

// A conv graph whose input depends on `seed`, so crossed buffers would show.
std::unique_ptr<OneOpGraph> MakeGraph(int seed) {
  const int k = kKernel * kKernel * kCin;
  std::vector<int8_t> trits(kCout * k);
  for (size_t i = 0; i < trits.size(); ++i) trits[i] = static_cast<int8_t>((i * 7 + 3) % 3) - 1;
  std::vector<uint8_t> codes;
  std::string error;
  core::PackTrits(trits.data(), kCout, k, &codes, &error);
  std::vector<float> pos(kCout), neg(kCout), bias(kCout);
  for (int c = 0; c < kCout; ++c) {
    pos[c] = 0.5f + 0.1f * c;
    neg[c] = 0.7f - 0.05f * c;
    bias[c] = 0.01f * c - 0.02f;
  }
  std::vector<float> x(kBatch * kHeight * kWidth * kCin);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = static_cast<float>((i * 31 + seed * 17) % 23) / 7.0f - 1.5f;
  std::vector<TensorSpec> t(6);
  t[0].dims = {kBatch, kHeight, kWidth, kCin};
  t[0].data = Bytes(x);
  t[1].type = kTfLiteUInt8;
  t[1].dims = {kCout, static_cast<int>(core::PackedRowBytes(k))};
  t[1].data = codes;
  t[1].constant = true;
  for (int i = 2; i <= 4; ++i) {
    t[i].dims = {kCout};
    t[i].constant = true;
  }
  t[2].data = Bytes(pos);
  t[3].data = Bytes(neg);
  t[4].data = Bytes(bias);
  t[5].dims = {1};
  return std::unique_ptr<OneOpGraph>(
      new OneOpGraph(t, {0, 1, 2, 3, 4}, {5}, "TTQ_CONV_2D", ConvOptions()));
}

TfLiteDelegate* NewDelegate(TfLiteTtqNumericMode mode) {
  TfLiteTtqDelegateOptions o = TfLiteTtqDelegateOptionsDefault();
  o.mode = mode;
  o.num_threads = 2;
  return TfLiteTtqDelegateCreate(&o);
}

std::vector<float> RunAlone(int seed, TfLiteTtqNumericMode mode) {
  TfLiteDelegate* d = NewDelegate(mode);
  auto g = MakeGraph(seed);
  EXPECT_EQ(g->Run(d), fuzz::RunOutcome::kRan) << g->errors();
  std::vector<float> y = g->output();
  TfLiteTtqDelegateDelete(d);
  return y;
}

class ConcurrencyTest : public ::testing::TestWithParam<TfLiteTtqNumericMode> {};

TEST_P(ConcurrencyTest, OneDelegateAndGraphPerThread) {
  constexpr int kThreads = 4, kRounds = 5;
  std::vector<std::vector<float>> expected;
  for (int t = 0; t < kThreads; ++t) expected.push_back(RunAlone(t, GetParam()));
  std::vector<int> mismatches(kThreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      TfLiteDelegate* d = NewDelegate(GetParam());
      for (int r = 0; r < kRounds; ++r) {
        auto g = MakeGraph(t);
        if (g->Run(d) != fuzz::RunOutcome::kRan || g->output() != expected[t]) ++mismatches[t];
      }
      TfLiteTtqDelegateDelete(d);
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

TEST_P(ConcurrencyTest, OneGraphSharedUnderAMutex) {
  const std::vector<float> expected = RunAlone(1, GetParam());
  TfLiteDelegate* d = NewDelegate(GetParam());
  auto g = MakeGraph(1);
  std::mutex mu;
  int mismatches = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int r = 0; r < 5; ++r) {
        std::lock_guard<std::mutex> lock(mu);
        if (g->Run(d) != fuzz::RunOutcome::kRan || g->output() != expected) ++mismatches;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches, 0);
  TfLiteTtqDelegateDelete(d);
}

INSTANTIATE_TEST_SUITE_P(Modes, ConcurrencyTest,
                         ::testing::Values(kTfLiteTtqModeExact, kTfLiteTtqModeFast));

}  // namespace
}  // namespace ttq
