#include "core/runtime/thread_pool.h"

#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <exception>
#include <future>
#include <thread>
#include <vector>

namespace xp::runtime {

struct ThreadPool::Impl {
  explicit Impl(size_t n) : pool(n) {}
  boost::asio::thread_pool pool;
};

ThreadPool::ThreadPool(size_t num_threads)
    : size_(num_threads ? num_threads : std::max(1u, std::thread::hardware_concurrency())) {
  impl_ = std::make_unique<Impl>(size_);
}

ThreadPool::~ThreadPool() { impl_->pool.join(); }

void ThreadPool::parallel_for(size_t n, const std::function<void(size_t, size_t)>& fn) {
  if (n == 0) return;
  size_t parts = std::min(n, size_);
  std::vector<std::future<void>> done;
  done.reserve(parts);
  for (size_t p = 0; p < parts; ++p) {
    size_t begin = n * p / parts, end = n * (p + 1) / parts;
    auto task = std::make_shared<std::packaged_task<void()>>([&fn, begin, end] { fn(begin, end); });
    done.push_back(task->get_future());
    boost::asio::post(impl_->pool, [task] { (*task)(); });
  }
  std::exception_ptr first;
  for (auto& f : done) {
    try {
      f.get();
    } catch (...) {
      if (!first) first = std::current_exception();
    }
  }
  if (first) std::rethrow_exception(first);
}

}  // namespace xp::runtime
