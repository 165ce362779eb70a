#include "core/nn/data_parallel.h"

#include <Eigen/Core>
#include <fmt/format.h>

#include <cstring>
#include <stdexcept>

namespace xp::nn {

namespace {

// Eigen's GEMM blocking depends on its thread count and on the cache sizes it reads from the
// CPU; both change the order in which a product's terms are summed. Fixed here for the process
// (evaluation included, so a reported accuracy does not move with the machine either).
void fix_gemm_blocking() {
  Eigen::setNbThreads(1);
  Eigen::setCpuCacheSizes(32 * 1024, 1024 * 1024, 16 * 1024 * 1024);
}

std::vector<std::byte> copy_buffers(Module& m) {
  std::vector<std::byte> out;
  for (auto& [name, t] : m.buffers()) {
    const size_t at = out.size();
    out.resize(at + t->nbytes());
    std::memcpy(out.data() + at, t->raw_data(), t->nbytes());
  }
  return out;
}

void set_buffers(Module& m, const std::vector<std::byte>& bytes) {
  size_t at = 0;
  for (auto& [name, t] : m.buffers()) {
    std::memcpy(t->raw_data(), bytes.data() + at, t->nbytes());
    at += t->nbytes();
  }
}

}  // namespace

DataParallel::DataParallel(std::vector<Module*> replicas, int64_t logical_ranks)
    : replicas_(std::move(replicas)), logical_ranks_(logical_ranks) {
  if (logical_ranks_ < 1) throw std::invalid_argument(fmt::format("logical ranks must be ≥ 1, got {}", logical_ranks_));
  if (replicas_.empty() || workers() > logical_ranks_)
    throw std::invalid_argument(
        fmt::format("workers must be between 1 and the {} logical ranks, got {}", logical_ranks_, workers()));
  int64_t total = 0;
  for (auto& [name, p] : replicas_[0]->parameters()) {
    if (p->value.device() != tensor::Device::kCPU)
      throw std::invalid_argument(fmt::format("data parallelism over logical ranks runs on the CPU ('{}' is not)", name));
    total += p->value.numel();
  }
  for (Module* r : replicas_)
    if (r->parameters().size() != replicas_[0]->parameters().size())
      throw std::invalid_argument("data-parallel replicas differ in their parameters");
  slots_.assign(static_cast<size_t>(logical_ranks_), std::vector<float>(static_cast<size_t>(total)));
  fix_gemm_blocking();
  broadcast_parameters();
}

DataParallel::ShardResult DataParallel::run(const std::function<ShardResult(int64_t rank, Module& model)>& shard) {
  const std::vector<std::byte> step_buffers = copy_buffers(*replicas_[0]);
  std::vector<std::byte> rank0_buffers;
  std::vector<ShardResult> results(static_cast<size_t>(logical_ranks_));
  std::exception_ptr failure;
  const int64_t w_count = workers();
  // One thread per worker; the layers' own OpenMP loops run serially inside (nested regions are
  // inactive), and GEMM is single-threaded (fix_gemm_blocking).
#pragma omp parallel for schedule(static, 1) num_threads(static_cast<int>(w_count))
  for (int64_t w = 0; w < w_count; ++w) {
    try {
      Module& m = *replicas_[static_cast<size_t>(w)];
      for (int64_t rank = w; rank < logical_ranks_; rank += w_count) {
        set_buffers(m, step_buffers);
        m.zero_grad();
        ShardResult r = shard(rank, m);
        results[static_cast<size_t>(rank)] = r;
        float* slot = slots_[static_cast<size_t>(rank)].data();
        for (auto& [name, p] : m.parameters()) {
          const float* g = p->grad.data<float>();
          const int64_t n = p->grad.numel();
          for (int64_t i = 0; i < n; ++i) slot[i] = g[i] * r.grad_scale;
          slot += n;
        }
        if (rank == 0) rank0_buffers = copy_buffers(m);
      }
    } catch (...) {
#pragma omp critical
      if (!failure) failure = std::current_exception();
    }
  }
  if (failure) std::rethrow_exception(failure);

  // Σ over ranks in rank order, element by element (the same additions for any worker count).
  int64_t offset = 0;
  for (auto& [name, p] : replicas_[0]->parameters()) {
    float* g = p->grad.data<float>();
    const int64_t n = p->grad.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) {
      float sum = slots_[0][static_cast<size_t>(offset + i)];
      for (int64_t rank = 1; rank < logical_ranks_; ++rank) sum += slots_[static_cast<size_t>(rank)][static_cast<size_t>(offset + i)];
      g[i] = sum;
    }
    offset += n;
  }
  set_buffers(*replicas_[0], rank0_buffers);
  ShardResult total{0.0, 0, 1.0f};
  for (const ShardResult& r : results) {
    total.loss_sum += r.loss_sum;
    total.correct += r.correct;
  }
  return total;
}

void DataParallel::broadcast_parameters() {
  auto source = replicas_[0]->parameters();
  const std::vector<std::byte> buffers = copy_buffers(*replicas_[0]);
  for (size_t w = 1; w < replicas_.size(); ++w) {
    auto target = replicas_[w]->parameters();
    for (size_t k = 0; k < source.size(); ++k)
      std::memcpy(target[k].second->value.raw_data(), source[k].second->value.raw_data(), source[k].second->value.nbytes());
    set_buffers(*replicas_[w], buffers);
  }
}

}  // namespace xp::nn
