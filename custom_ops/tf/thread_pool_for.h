// The core's ParallelFor (../core/parallel_for.h) on TensorFlow's intra-op
// thread pool, for the CPU kernels.
#ifndef CAFE_TF_TF_THREAD_POOL_FOR_H_
#define CAFE_TF_TF_THREAD_POOL_FOR_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>

#include "../core/parallel_for.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/platform/mutex.h"
#include "tensorflow/core/platform/threadpool.h"

namespace tensorflow {
namespace cafe_ops {

// Runs fn over [0, n) split into contiguous parts, on the calling thread and
// up to max_threads - 1 threads of TF's intra-op pool, and waits for them.
// Unlike tensorflow::Shard (whose cost model ran the insert's few coarse tasks
// on one thread), the split is what the caller asks for. Parts are claimed
// from a shared counter: with a few parts per thread, a thread that the OS
// deschedules holds up less; and the caller runs whatever no pool thread has
// picked up, so there is no deadlock when the pool is busy (or is the caller's
// own). Each part has at least `min_units_per_part` units (small inputs run on
// the caller alone).
constexpr int64_t kPartsPerThread = 4;

inline void RunParallel(thread::ThreadPool* workers, int max_threads, int64_t min_units_per_part,
                        int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  const int64_t parts = std::max<int64_t>(
      1, std::min<int64_t>({kPartsPerThread * max_threads, n,
                            min_units_per_part > 0 ? n / min_units_per_part : n}));
  const int64_t helpers = std::min<int64_t>(parts, max_threads) - 1;
  if (helpers <= 0 || workers == nullptr) {
    fn(0, n);
    return;
  }
  struct Shared {
    std::atomic<int64_t> next{0};
    std::atomic<int64_t> done{0};
    int64_t parts = 0;
    int64_t n = 0;
    const std::function<void(int64_t, int64_t)>* fn = nullptr;
    mutex mu;
    condition_variable finished;
  };
  auto shared = std::make_shared<Shared>();
  shared->parts = parts;
  shared->n = n;
  shared->fn = &fn;
  // A closure that runs after the caller returned finds no part left and never touches fn.
  auto run = [shared]() {
    for (int64_t p = shared->next.fetch_add(1); p < shared->parts; p = shared->next.fetch_add(1)) {
      (*shared->fn)(shared->n * p / shared->parts, shared->n * (p + 1) / shared->parts);
      if (shared->done.fetch_add(1) + 1 == shared->parts) {
        mutex_lock lock(shared->mu);
        shared->finished.notify_all();
      }
    }
  };
  for (int64_t k = 0; k < helpers; ++k) workers->Schedule(run);
  run();
  mutex_lock lock(shared->mu);
  while (shared->done.load() < parts) shared->finished.wait(lock);
}

inline cafe::ParallelFor MakeParallelFor(OpKernelContext* ctx, int max_threads,
                                         int64_t min_units_per_part) {
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  return [=](int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
    RunParallel(workers, max_threads, min_units_per_part, n, fn);
  };
}

inline int ThreadsFor(OpKernelContext* ctx, int requested) {
  return requested > 0 ? requested
                       : ctx->device()->tensorflow_cpu_worker_threads()->num_threads;
}

// A sketch lookup costs a few ns and waking a pool thread tens of microseconds:
// each part of a query (CafeSketchQuery's, CafeRoute's of its distinct pairs)
// gets at least this many ids; queries under twice this run on the caller.
constexpr int64_t kQueryIdsPerPart = 16384;

}  // namespace cafe_ops
}  // namespace tensorflow

#endif  // CAFE_TF_TF_THREAD_POOL_FOR_H_
