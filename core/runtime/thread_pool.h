// A fixed-size worker pool (boost::asio::thread_pool underneath) with a blocking parallel_for.
// Work is split into contiguous index ranges, one task per range, so the split — and therefore
// any per-range reduction order — depends only on (n, num_threads), never on timing.
#pragma once
#include <cstddef>
#include <functional>
#include <memory>

namespace xp::runtime {

class ThreadPool {
 public:
  explicit ThreadPool(size_t num_threads);  // 0 = hardware concurrency
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  size_t size() const { return size_; }
  // Calls fn(begin, end) over [0, n) split into at most size() ranges; returns when all finish
  // and rethrows the first exception a range threw.
  void parallel_for(size_t n, const std::function<void(size_t, size_t)>& fn);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  size_t size_;
};

}  // namespace xp::runtime
