// A small fork-join thread pool for the kernels.
//
// ThreadPool(n) runs ParallelFor on the calling thread plus n - 1 worker threads; n <= 1 starts
// no thread at all and ParallelFor simply calls fn(0, n). Workers spin briefly after each job
// (20 us busy, then yielding until 60 us: the gap between two TTQ ops, one small builtin op, is
// 5-10 us), then sleep on a condition variable, so an idle pool costs no CPU.
//
// ParallelFor(n, fn) calls fn(begin, end) on disjoint, non-empty, contiguous ranges that cover
// [0, n) exactly once, concurrently, and returns when all calls have returned. The ranges are
// chunks (about 4 per thread) claimed dynamically, the caller from the front and the workers
// from the back (consecutive ops then split data alike: cache locality), so a worker
// that the OS does not schedule in time (an oversubscribed machine) does not stall the job: the
// caller takes over its chunks. Calls from several threads are serialized; a nested call from
// inside fn runs inline. When a worker that did claim a chunk is preempted (the caller then waits
// many chunk-times for it), the pool runs the jobs of the next 20 ms on the calling thread
// alone, then tries its workers again: on an oversubscribed machine N threads degrade to about
// 1-thread speed instead of waiting for scheduler time slices.
#ifndef TTQ_DELEGATE_CORE_THREAD_POOL_H_
#define TTQ_DELEGATE_CORE_THREAD_POOL_H_

#include <functional>
#include <memory>

namespace ttq {
namespace core {

class ThreadPool {
 public:
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  void ParallelFor(int n, const std::function<void(int begin, int end)>& fn);

 private:
  struct Impl;
  int num_threads_;
  std::unique_ptr<Impl> impl_;
};

// Runs fn over [0, n) on `pool`, or inline when pool is null or has one thread.
inline void ParallelFor(ThreadPool* pool, int n, const std::function<void(int, int)>& fn) {
  if (n <= 0) return;
  if (pool == nullptr || pool->num_threads() <= 1 || n == 1) {
    fn(0, n);
  } else {
    pool->ParallelFor(n, fn);
  }
}

}  // namespace core
}  // namespace ttq

#endif  // TTQ_DELEGATE_CORE_THREAD_POOL_H_
