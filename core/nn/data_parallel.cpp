#include "core/nn/data_parallel.h"

#include <Eigen/Core>
#include <fmt/format.h>

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "core/dist/launch.h"

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

constexpr size_t kHeader = 8;  // the stop byte, padded (records hold f32 slots: 4-byte alignment)

}  // namespace

DataParallel::DataParallel(std::vector<Module*> replicas, int64_t logical_ranks, dist::ProcessGroup* processes)
    : replicas_(std::move(replicas)), logical_ranks_(logical_ranks), processes_(processes) {
  if (logical_ranks_ < 1) throw std::invalid_argument(fmt::format("logical ranks must be ≥ 1, got {}", logical_ranks_));
  const int64_t owned = static_cast<int64_t>(owned_ranks().size());
  if (replicas_.empty() || workers() > owned)
    throw std::invalid_argument(fmt::format(
        "workers must be between 1 and the {} logical ranks{}, got {}", owned,
        processes_ && processes_->size() > 1 ? fmt::format(" this process runs (of {}, over {} processes)", logical_ranks_,
                                                           processes_->size())
                                             : "",
        workers()));
  for (auto& [name, p] : replicas_[0]->parameters()) {
    if (p->value.device() != tensor::Device::kCPU)
      throw std::invalid_argument(fmt::format("data parallelism over logical ranks runs on the CPU ('{}' is not)", name));
    slot_floats_ += p->value.numel();
  }
  for (Module* r : replicas_)
    if (r->parameters().size() != replicas_[0]->parameters().size())
      throw std::invalid_argument("data-parallel replicas differ in their parameters");
  fix_gemm_blocking();
  broadcast_parameters();
}

std::vector<int64_t> DataParallel::owned_ranks() const {
  const int64_t n = processes_ ? processes_->size() : 1, p = processes_ ? processes_->rank() : 0;
  std::vector<int64_t> out;
  for (int64_t r = p; r < logical_ranks_; r += n) out.push_back(r);
  return out;
}

DataParallel::ShardResult DataParallel::run(const std::function<ShardResult(int64_t rank, Module& model)>& shard, bool* stop) {
  const int64_t n_proc = processes_ ? processes_->size() : 1;
  const std::vector<int64_t> owned = owned_ranks();
  const std::vector<std::byte> step_buffers = copy_buffers(*replicas_[0]);
  // The block this process contributes: header, the buffers its first rank leaves (rank 0's on
  // process 0), then one record per rank, as many records on every process.
  const int64_t w_count = workers();
  // One worker alone adds each rank's gradient to the sum as soon as it is made (the same
  // additions, in the same order, as summing the slots afterwards) and keeps no slots.
  const bool direct = n_proc == 1 && w_count == 1;
  const size_t record = 16 + (direct ? 0 : static_cast<size_t>(slot_floats_) * sizeof(float));
  const size_t per_process = static_cast<size_t>((logical_ranks_ + n_proc - 1) / n_proc);
  const size_t block = kHeader + step_buffers.size() + per_process * record;
  local_.resize(block);  // every byte that is read is written below (padding records are not read)
  local_[0] = std::byte{stop && *stop ? uint8_t{1} : uint8_t{0}};
  std::byte* records = local_.data() + kHeader + step_buffers.size();
  if (direct) sum_.resize(static_cast<size_t>(slot_floats_));
  for (Module* m : replicas_) m->zero_grad();  // afterwards each shard's copy leaves the gradients zero

  std::exception_ptr failure;
  // One thread per worker; the layers' own OpenMP loops run serially inside (nested regions are
  // inactive), and GEMM is single-threaded (fix_gemm_blocking).
#pragma omp parallel for schedule(static, 1) num_threads(static_cast<int>(w_count))
  for (int64_t w = 0; w < w_count; ++w) {
    try {
      Module& m = *replicas_[static_cast<size_t>(w)];
      for (size_t i = static_cast<size_t>(w); i < owned.size(); i += static_cast<size_t>(w_count)) {
        set_buffers(m, step_buffers);
        const ShardResult r = shard(owned[i], m);
        std::byte* rec = records + i * record;
        std::memcpy(rec, &r.loss_sum, 8);
        std::memcpy(rec + 8, &r.correct, 8);
        // The scaled gradient into the rank's slot (or onto the running sum), zeroing it behind.
        float* out = direct ? sum_.data() : reinterpret_cast<float*>(rec + 16);
        const bool add = direct && i > 0;
        for (auto& [name, p] : m.parameters()) {
          float* g = p->grad.data<float>();
          const int64_t n = p->grad.numel();
          for (int64_t k = 0; k < n; ++k) {
            const float scaled = g[k] * r.grad_scale;
            out[k] = add ? out[k] + scaled : scaled;
            g[k] = 0.0f;
          }
          out += n;
        }
        if (i == 0) {
          const std::vector<std::byte> left = copy_buffers(m);
          if (!left.empty()) std::memcpy(local_.data() + kHeader, left.data(), left.size());  // none: a null source
        }
      }
    } catch (...) {
#pragma omp critical
      if (!failure) failure = std::current_exception();
    }
  }
  if (failure) std::rethrow_exception(failure);

  // Every process's block, in process order (alone: this one).
  const std::byte* blocks = local_.data();
  if (n_proc > 1) {
    gathered_.resize(block * static_cast<size_t>(n_proc));
    processes_->all_gather_bytes(local_, gathered_);
    blocks = gathered_.data();
  }
  auto record_of = [&](int64_t rank) {
    return blocks + static_cast<size_t>(rank % n_proc) * block + kHeader + step_buffers.size() +
           static_cast<size_t>(rank / n_proc) * record;
  };
  // Σ over ranks in rank order, element by element (the same additions for any worker count).
  std::vector<const float*> slots(static_cast<size_t>(logical_ranks_));
  if (!direct)
    for (int64_t rank = 0; rank < logical_ranks_; ++rank)
      slots[static_cast<size_t>(rank)] = reinterpret_cast<const float*>(record_of(rank) + 16);
  int64_t offset = 0;
  for (auto& [name, p] : replicas_[0]->parameters()) {
    float* g = p->grad.data<float>();
    const int64_t n = p->grad.numel();
    if (direct) {
      std::memcpy(g, sum_.data() + offset, static_cast<size_t>(n) * sizeof(float));
      offset += n;
      continue;
    }
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; ++i) {
      float sum = slots[0][offset + i];
      for (int64_t rank = 1; rank < logical_ranks_; ++rank) sum += slots[static_cast<size_t>(rank)][offset + i];
      g[i] = sum;
    }
    offset += n;
  }
  set_buffers(*replicas_[0], std::vector<std::byte>(blocks + kHeader, blocks + kHeader + step_buffers.size()));
  ShardResult total{0.0, 0, 1.0f};
  for (int64_t rank = 0; rank < logical_ranks_; ++rank) {
    double loss = 0.0;
    int64_t correct = 0;
    std::memcpy(&loss, record_of(rank), 8);
    std::memcpy(&correct, record_of(rank) + 8, 8);
    total.loss_sum += loss;
    total.correct += correct;
  }
  if (stop) {
    *stop = false;
    for (int64_t p = 0; p < n_proc; ++p) *stop = *stop || blocks[static_cast<size_t>(p) * block] != std::byte{0};
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

int64_t resolve_workers(const WorldOptions& o, dist::ProcessGroup* processes) {
  const int64_t process_count = processes ? processes->size() : 1;
  if (process_count > o.logical_ranks)
    throw std::invalid_argument(fmt::format("train: {} processes but only {} logical ranks: each process runs at least one "
                                            "(set train.logical_ranks to {} or more)", process_count, o.logical_ranks, process_count));
  const int64_t owned = (o.logical_ranks - (processes ? processes->rank() : 0) + process_count - 1) / process_count;
  const int64_t cores = omp_get_max_threads() / (processes ? std::max(1, dist::detect_launch().local_size) : 1);
  const int64_t workers = o.workers == 0 ? std::clamp<int64_t>(cores, 1, std::max<int64_t>(owned, 1)) : o.workers;
  if (o.logical_ranks < 1 || workers < 1 || workers > owned)
    throw std::invalid_argument(fmt::format("train: workers must be between 1 and the logical_ranks this process runs "
                                            "({} of {}), got {}", owned, o.logical_ranks, workers));
  return workers;
}

TrainingWorld::TrainingWorld(Module& model, const std::function<std::shared_ptr<Module>()>& make_replica,
                             WorldOptions options, dist::ProcessGroup* processes) {
  const int64_t workers = resolve_workers(options, processes);
  std::vector<Module*> models{&model};
  for (int64_t w = 1; w < workers; ++w) {
    replicas_.push_back(make_replica());
    models.push_back(replicas_.back().get());
  }
  if (processes && processes->size() > 1)
    processes_ = processes->split(0, "data parallel", dist::Seconds(options.collective_timeout_s));
  data_parallel_ = std::make_unique<DataParallel>(std::move(models), options.logical_ranks, processes_.get());
}

}  // namespace xp::nn
