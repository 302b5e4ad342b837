// ThreadChoice: the per-op probe between the pool and the calling thread (core/thread_choice.h).
#include "core/thread_choice.h"

#include <gtest/gtest.h>

namespace ttq {
namespace core {
namespace {

// Runs `runs` invocations where a run on the pool takes `pool_s` and one on the caller
// `caller_s`; returns how many ran on the pool.
int Simulate(ThreadChoice* choice, ThreadPool* pool, int runs, double pool_s, double caller_s) {
  int on_pool = 0;
  for (int i = 0; i < runs; ++i) {
    ThreadPool* p = choice->Next(pool);
    EXPECT_TRUE(p == pool || p == nullptr);
    on_pool += p == pool;
    choice->Record(p == pool ? pool_s : caller_s);
  }
  return on_pool;
}

constexpr int kProbe = ThreadChoice::kWarmupRuns + 2 * ThreadChoice::kProbeRuns;

TEST(ThreadChoiceTest, KeepsThePoolWhenItIsFaster) {
  ThreadPool pool(2);
  ThreadChoice choice;
  EXPECT_EQ(Simulate(&choice, &pool, kProbe, 1.0, 1.8),
            ThreadChoice::kWarmupRuns + ThreadChoice::kProbeRuns);
  EXPECT_FALSE(choice.caller_only());
  EXPECT_EQ(Simulate(&choice, &pool, 100, 1.0, 1.8), 100);
}

TEST(ThreadChoiceTest, RunsOnTheCallerWhenThePoolIsSlower) {
  ThreadPool pool(2);
  ThreadChoice choice;
  Simulate(&choice, &pool, kProbe, 1.2, 1.0);
  EXPECT_TRUE(choice.caller_only());
  EXPECT_EQ(Simulate(&choice, &pool, 100, 1.2, 1.0), 0);
}

TEST(ThreadChoiceTest, PrefersThePoolWithinTheMargin) {
  ThreadPool pool(2);
  ThreadChoice choice;
  Simulate(&choice, &pool, kProbe, 1.0, 1.0 - ThreadChoice::kMargin / 2);
  EXPECT_FALSE(choice.caller_only());
}

TEST(ThreadChoiceTest, MedianIgnoresOneSlowRun) {
  ThreadPool pool(2);
  ThreadChoice choice;
  int pool_runs = 0;
  for (int i = 0; i < kProbe; ++i) {
    ThreadPool* p = choice.Next(&pool);
    // The pool is faster except for one preempted run of 100x.
    choice.Record(p == &pool ? (++pool_runs == 3 ? 100.0 : 1.0) : 1.5);
  }
  EXPECT_FALSE(choice.caller_only());
}

TEST(ThreadChoiceTest, ProbesAgainAndFollowsTheMachine) {
  ThreadPool pool(2);
  ThreadChoice choice;
  Simulate(&choice, &pool, kProbe, 1.2, 1.0);
  ASSERT_TRUE(choice.caller_only());
  // The machine changes: the pool is now 2x faster. After kRunsBetweenProbes runs on the
  // caller, a new probe (no warm-up) switches back.
  EXPECT_EQ(Simulate(&choice, &pool, ThreadChoice::kRunsBetweenProbes, 0.5, 1.0), 0);
  Simulate(&choice, &pool, 2 * ThreadChoice::kProbeRuns, 0.5, 1.0);
  EXPECT_FALSE(choice.caller_only());
  EXPECT_EQ(Simulate(&choice, &pool, 50, 0.5, 1.0), 50);
}

TEST(ThreadChoiceTest, ResetStartsOverOnThePool) {
  ThreadPool pool(2);
  ThreadChoice choice;
  Simulate(&choice, &pool, kProbe, 1.2, 1.0);
  ASSERT_TRUE(choice.caller_only());
  choice.Reset();
  EXPECT_FALSE(choice.caller_only());
  EXPECT_EQ(choice.Next(&pool), &pool);  // warm-up again
}

TEST(ThreadChoiceTest, DisabledOrSingleThreadedAlwaysReturnsThePool) {
  ThreadPool pool(2), one(1);
  ThreadChoice disabled(/*enabled=*/false);
  EXPECT_EQ(Simulate(&disabled, &pool, 200, 2.0, 1.0), 200);
  ThreadChoice choice;
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(choice.Next(&one), &one);
    choice.Record(1.0);
    EXPECT_EQ(choice.Next(nullptr), nullptr);
    choice.Record(1.0);
  }
  EXPECT_FALSE(choice.caller_only());
}

}  // namespace
}  // namespace core
}  // namespace ttq
