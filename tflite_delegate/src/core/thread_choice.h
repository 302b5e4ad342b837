// The choice between the thread pool and the calling thread alone, made by timing both.
//
// Two threads do not pay on every machine. Measured on a 2-vCPU Intel Xeon VM (Emerald Rapids,
// AVX-512 VNNI): two single-threaded int8 convs, one per vCPU, each ran 1.5x slower than one
// alone (the vCPUs share cache bandwidth), so fast mode's ResNet-20 took 1.1-1.2x longer at 2
// threads than at 1, as did XNNPACK's int8 model. A user who asks for 2 threads should never get
// slower than 1, and should not need a flag to avoid it.
//
// The delegate keeps one ThreadChoice per graph, for all its TTQ ops together, and times whole
// invokes (mixing sides per op was slower: a worker left asleep by caller-only ops took 29 us to
// wake for the next pool op). After kWarmupRuns runs on the pool, kProbeRuns runs on each side,
// alternating; then it keeps the side with the lower median (the pool unless the caller alone is
// at least kMargin faster) for kRunsBetweenProbes runs, and probes again (the load of a shared
// machine changes). The choice never changes a result: every kernel computes each output alike
// whatever the thread count (kernels_test checks it bit for bit).
//
//   ThreadChoice choice;                      // Reset() when the shapes change
//   ThreadPool* p = choice.Next(pool);        // pool, or nullptr for the calling thread
//   ... run on p ...
//   choice.Record(seconds);                   // the time of that run
#ifndef TTQ_DELEGATE_CORE_THREAD_CHOICE_H_
#define TTQ_DELEGATE_CORE_THREAD_CHOICE_H_

#include <vector>

#include "core/thread_pool.h"

namespace ttq {
namespace core {

class ThreadChoice {
 public:
  static constexpr int kWarmupRuns = 2;
  static constexpr int kProbeRuns = 8;  // per side
  static constexpr int kRunsBetweenProbes = 2000;
  static constexpr double kMargin = 0.05;

  // `enabled` false always returns the pool (TTQ_NO_THREAD_CHOICE=1 in the delegate).
  explicit ThreadChoice(bool enabled = true) : enabled_(enabled) {}

  // The pool for the next run: `pool`, or nullptr for the calling thread alone.
  ThreadPool* Next(ThreadPool* pool);
  // The duration of the run that the last Next() chose for.
  void Record(double seconds);
  // Starts over (the op's shape changed).
  void Reset();

  // Whether the decision in force runs on the calling thread alone (false while probing).
  bool caller_only() const { return decided_ && !use_pool_; }

 private:
  static double Median(std::vector<double> v);

  bool enabled_;
  bool decided_ = false;
  bool use_pool_ = true;
  bool last_on_pool_ = true;  // what the last Next() returned (when probing)
  bool probing_ = false;      // the last Next() was a probe run
  int runs_ = 0;              // runs since the start or the last decision
  std::vector<double> on_pool_, on_caller_;
};

}  // namespace core
}  // namespace ttq

#endif  // TTQ_DELEGATE_CORE_THREAD_CHOICE_H_
