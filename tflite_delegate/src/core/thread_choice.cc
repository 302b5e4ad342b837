#include "core/thread_choice.h"

#include <algorithm>

namespace ttq {
namespace core {

ThreadPool* ThreadChoice::Next(ThreadPool* pool) {
  probing_ = false;
  if (!enabled_ || pool == nullptr || pool->num_threads() <= 1) return pool;
  if (decided_) {
    if (runs_ < kRunsBetweenProbes) {
      ++runs_;
      return use_pool_ ? pool : nullptr;
    }
    decided_ = false;  // probe again, without warm-up
    runs_ = kWarmupRuns;
  }
  if (runs_ < kWarmupRuns) {  // first runs allocate scratch buffers: not timed
    ++runs_;
    return pool;
  }
  probing_ = true;
  // Alternate, starting on the pool, until both sides have kProbeRuns samples.
  last_on_pool_ = on_pool_.size() <= on_caller_.size();
  return last_on_pool_ ? pool : nullptr;
}

void ThreadChoice::Record(double seconds) {
  if (!probing_) return;
  probing_ = false;
  (last_on_pool_ ? on_pool_ : on_caller_).push_back(seconds);
  if (on_pool_.size() < static_cast<size_t>(kProbeRuns) ||
      on_caller_.size() < static_cast<size_t>(kProbeRuns)) {
    return;
  }
  use_pool_ = !(Median(on_caller_) < (1.0 - kMargin) * Median(on_pool_));
  decided_ = true;
  runs_ = 0;
  on_pool_.clear();
  on_caller_.clear();
}

void ThreadChoice::Reset() {
  decided_ = false;
  use_pool_ = true;
  probing_ = false;
  runs_ = 0;
  on_pool_.clear();
  on_caller_.clear();
}

double ThreadChoice::Median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

}  // namespace core
}  // namespace ttq
