#include "core/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64)
#include <immintrin.h>
#define TTQ_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define TTQ_CPU_RELAX() asm volatile("yield" ::: "memory")
#else
#define TTQ_CPU_RELAX() ((void)0)
#endif

namespace ttq {
namespace core {
namespace {

// An idle worker (and the caller waiting for unfinished chunks) first busy-waits kPauseTime,
// then keeps polling but yields its time slice between polls until kSpinTime, then sleeps on
// the condition variable (the caller keeps yielding). Yielding matters when the cores are
// oversubscribed: other runnable threads -- the runtime's own XNNPACK pool between delegated
// ops, other processes -- get the core instead of a spinning thread.
constexpr auto kPauseTime = std::chrono::microseconds(20);
constexpr auto kSpinTime = std::chrono::microseconds(60);
constexpr int kChunksPerThread = 4;
// Straggler back-off. A worker that the OS preempts while it holds a chunk makes the caller
// wait for a whole scheduler time slice (milliseconds on an oversubscribed machine: measured
// 15 ms medians for a 1.6 ms ResNet-20 at load 17 on 2 cores). When the caller, after
// finishing its own chunks, waits more than kStragglerFactor chunk-times (and at least
// kStragglerMinWait) for the workers, the pool runs jobs on the calling thread alone for
// a back-off time, then tries the workers again. The back-off doubles with every straggler
// (from kMinBackoff to kMaxBackoff) and halves when the first job after a back-off (the probe)
// finishes in time, so a persistently loaded machine probes rarely. On an idle machine this
// never triggers.
constexpr int kStragglerFactor = 4;
constexpr auto kStragglerMinWait = std::chrono::microseconds(200);
constexpr auto kMinBackoff = std::chrono::milliseconds(20);
constexpr auto kMaxBackoff = std::chrono::milliseconds(2000);

// The claim word: job id (32 bits), then the front and back of the unclaimed chunks (16 bits
// each; ParallelFor makes at most 0xffff chunks).
constexpr uint64_t PackClaim(uint32_t id, uint32_t front, uint32_t back) {
  return static_cast<uint64_t>(id) << 32 | static_cast<uint64_t>(front) << 16 | back;
}

thread_local bool t_inside_pool = false;

}  // namespace

// Job protocol. `claim` packs (job id, front, back): chunks [front, back) are unclaimed. The
// caller claims from the front, the workers from the back, each with a CAS on the whole word, so
// a stale participant of an older job can never claim (its expected word has the old id). When
// all items are done the caller closes the job (front = back) before it touches fn_/n_/chunk_
// again; fn_ is read only after a successful claim, while the job is provably still open.
//
// Why two ends: with 2 threads the caller then runs the first part of every job and the worker
// the last, so consecutive ops split an image the same way and each thread mostly reads rows
// it wrote itself (in its own L2) instead of alternating chunks that leave half of every input
// in the other core's cache.
struct ThreadPool::Impl {
  explicit Impl(int num_workers) {
    for (int i = 0; i < num_workers; ++i) threads.emplace_back([this] { WorkerLoop(); });
  }

  ~Impl() {
    {
      std::lock_guard<std::mutex> lock(mu);
      stop.store(true, std::memory_order_relaxed);
      job.fetch_add(1, std::memory_order_release);
    }
    cv.notify_all();
    for (auto& t : threads) t.join();
  }

  // Returns the number of chunks this participant ran.
  int Work(uint32_t my_job, bool from_back) {
    int ran = 0;
    for (;;) {
      uint64_t c = claim.load(std::memory_order_acquire);
      if (static_cast<uint32_t>(c >> 32) != my_job) return ran;
      const uint32_t front = static_cast<uint32_t>(c >> 16) & 0xffffu;
      const uint32_t back = static_cast<uint32_t>(c) & 0xffffu;
      if (front >= back) return ran;
      const uint32_t k = from_back ? back - 1 : front;
      const uint64_t claimed =
          from_back ? PackClaim(my_job, front, back - 1) : PackClaim(my_job, front + 1, back);
      if (!claim.compare_exchange_weak(c, claimed, std::memory_order_acq_rel,
                                       std::memory_order_relaxed)) {
        continue;
      }
      const uint32_t n = n_.load(std::memory_order_relaxed);
      const uint32_t chunk = chunk_.load(std::memory_order_relaxed);
      const uint32_t begin = k * chunk, end = std::min(begin + chunk, n);
      (*fn_)(static_cast<int>(begin), static_cast<int>(end));
      done.fetch_add(end - begin, std::memory_order_acq_rel);
      ++ran;
    }
  }

  void WorkerLoop() {
    t_inside_pool = true;
    uint32_t seen = 0;
    for (;;) {
      uint32_t j = job.load(std::memory_order_acquire);
      if (j == seen) {
        const auto start = std::chrono::steady_clock::now();
        int spins = 0;
        bool yielding = false;
        while ((j = job.load(std::memory_order_acquire)) == seen) {
          if (yielding) {
            std::this_thread::yield();
            if (std::chrono::steady_clock::now() - start > kSpinTime) break;
            continue;
          }
          TTQ_CPU_RELAX();
          if (++spins == 64) {
            spins = 0;
            yielding = std::chrono::steady_clock::now() - start > kPauseTime;
          }
        }
        if (j == seen) {
          std::unique_lock<std::mutex> lock(mu);
          cv.wait(lock, [&] { return job.load(std::memory_order_acquire) != seen; });
          j = job.load(std::memory_order_acquire);
        }
      }
      seen = j;
      if (stop.load(std::memory_order_relaxed)) return;
      Work(seen, /*from_back=*/true);
    }
  }

  void ParallelFor(int n, int num_threads, const std::function<void(int, int)>& f) {
    std::lock_guard<std::mutex> call_lock(call_mu);
    const auto call_start = std::chrono::steady_clock::now();
    if (call_start < backoff_until) {
      t_inside_pool = true;
      f(0, n);
      t_inside_pool = false;
      return;
    }
    const bool probe = backoff_until != std::chrono::steady_clock::time_point{};
    const uint32_t per_thread_chunk = static_cast<uint32_t>(
        std::max(1, (n + num_threads * kChunksPerThread - 1) / (num_threads * kChunksPerThread)));
    // (The 16-bit claim fields: at most 0xffff chunks, whatever the thread count.)
    const uint32_t chunk =
        std::max(per_thread_chunk, (static_cast<uint32_t>(n) + 0xfffeu) / 0xffffu);
    const uint32_t chunks = (static_cast<uint32_t>(n) + chunk - 1) / chunk;
    const uint32_t id = job.load(std::memory_order_relaxed) + 1;
    fn_ = &f;
    n_.store(static_cast<uint32_t>(n), std::memory_order_relaxed);
    chunk_.store(chunk, std::memory_order_relaxed);
    done.store(0, std::memory_order_relaxed);
    claim.store(PackClaim(id, 0, chunks), std::memory_order_release);
    {
      std::lock_guard<std::mutex> lock(mu);
      job.store(id, std::memory_order_release);
    }
    cv.notify_all();
    t_inside_pool = true;
    const int ran = Work(id, /*from_back=*/false);
    t_inside_pool = false;
    const auto start = std::chrono::steady_clock::now();
    int spins = 0;
    bool yielding = false;
    while (done.load(std::memory_order_acquire) != static_cast<uint32_t>(n)) {
      if (yielding) {
        std::this_thread::yield();
        continue;
      }
      TTQ_CPU_RELAX();
      if (++spins == 64) {
        spins = 0;
        yielding = std::chrono::steady_clock::now() - start > kPauseTime;
      }
    }
    claim.store(PackClaim(id, chunks, chunks), std::memory_order_release);
    if (ran > 0) {
      const auto end = std::chrono::steady_clock::now();
      const auto chunk_time = (start - call_start) / ran;
      if (end - start > kStragglerMinWait && end - start > kStragglerFactor * chunk_time) {
        backoff = std::min<std::chrono::steady_clock::duration>(2 * backoff, kMaxBackoff);
        backoff_until = end + backoff;
      } else if (probe) {
        backoff = std::max<std::chrono::steady_clock::duration>(backoff / 2, kMinBackoff);
        backoff_until = {};
      }
    }
  }

  std::vector<std::thread> threads;
  std::mutex call_mu;  // serializes ParallelFor calls
  std::mutex mu;       // guards sleeping on cv
  std::condition_variable cv;
  std::atomic<uint32_t> job{0};
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> claim{0};  // job 0, no chunks
  std::atomic<uint32_t> done{0};
  std::atomic<uint32_t> n_{0};
  std::atomic<uint32_t> chunk_{1};
  const std::function<void(int, int)>* fn_ = nullptr;
  // Guarded by call_mu.
  std::chrono::steady_clock::time_point backoff_until{};
  std::chrono::steady_clock::duration backoff = kMinBackoff / 2;
};

ThreadPool::ThreadPool(int num_threads) : num_threads_(std::max(1, num_threads)) {
  if (num_threads_ > 1) impl_.reset(new Impl(num_threads_ - 1));
}

ThreadPool::~ThreadPool() = default;

void ThreadPool::ParallelFor(int n, const std::function<void(int, int)>& fn) {
  if (n <= 0) return;
  if (!impl_ || n == 1 || t_inside_pool) {
    fn(0, n);
    return;
  }
  impl_->ParallelFor(n, num_threads_, fn);
}

}  // namespace core
}  // namespace ttq
