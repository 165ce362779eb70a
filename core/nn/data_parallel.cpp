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

// Every parameter's value or gradient, in the parameters' order.
std::vector<Tensor*> tensors_of(Module& m, Tensor Parameter::*member) {
  std::vector<Tensor*> out;
  for (auto& [name, p] : m.parameters()) out.push_back(&(p->*member));
  return out;
}

constexpr size_t kHeader = 8;  // the stop byte, padded (records hold f32 slots: 4-byte alignment)
constexpr int64_t kShareAlign = 16;  // shares start on a 64-byte boundary of the parameters

// One stretch of `tensors`' elements (laid end to end) inside a range: `count` floats at `data`,
// which are tensors[index]'s elements from `lo` and the range's elements from `at`.
struct Run {
  float* data;
  int64_t count, at;
  size_t index;
  int64_t lo;
};

// Calls fn(run) for every run of `tensors`' elements inside `range`.
template <class Fn>
void for_each_run(const std::vector<Tensor*>& tensors, ElementRange range, Fn fn) {
  int64_t offset = 0;
  for (size_t index = 0; index < tensors.size(); ++index) {
    const int64_t n = tensors[index]->numel();
    const auto [lo, hi] = range.within(offset, n);
    if (lo < hi) fn(Run{tensors[index]->data<float>() + lo, hi - lo, offset + lo - range.begin, index, lo});
    offset += n;
  }
}

}  // namespace

DataParallel::DataParallel(std::vector<Module*> replicas, int64_t logical_ranks, dist::ProcessGroup* processes,
                           dist::RankRegions::Transport transport)
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

  const int64_t n_proc = processes_ ? processes_->size() : 1;
  direct_ = n_proc == 1 && workers() == 1;
  kept_.resize(replicas_.size());
  buffer_bytes_ = copy_buffers(*replicas_[0]).size();
  record_bytes_ = 16 + (direct_ ? 0 : static_cast<size_t>(slot_floats_) * sizeof(float));
  const auto per_process = static_cast<size_t>((logical_ranks_ + n_proc - 1) / n_proc);
  block_bytes_ = kHeader + buffer_bytes_ + per_process * record_bytes_;
  for (int64_t p = 0; p < n_proc; ++p) share_begin_.push_back(p * slot_floats_ / n_proc / kShareAlign * kShareAlign);
  share_begin_.push_back(slot_floats_);
  for (int64_t p = 0; p < n_proc; ++p)
    share_floats_ = std::max(share_floats_, share_begin_[static_cast<size_t>(p) + 1] - share_begin_[static_cast<size_t>(p)]);
  if (n_proc > 1)
    regions_ = std::make_unique<dist::RankRegions>(
        *processes_, block_bytes_ + static_cast<size_t>(share_floats_) * sizeof(float), transport);
}

DataParallel::~DataParallel() = default;

std::vector<int64_t> DataParallel::owned_ranks() const {
  const int64_t n = processes_ ? processes_->size() : 1, p = processes_ ? processes_->rank() : 0;
  std::vector<int64_t> out;
  for (int64_t r = p; r < logical_ranks_; r += n) out.push_back(r);
  return out;
}

ElementRange DataParallel::owned_elements() const {
  const auto p = static_cast<size_t>(processes_ ? processes_->rank() : 0);
  return {share_begin_[p], share_begin_[p + 1]};
}

DataParallel::ShardResult DataParallel::run(const std::function<ShardResult(int64_t rank, Module& model)>& shard, bool* stop) {
  const int64_t n_proc = processes_ ? processes_->size() : 1;
  const std::vector<int64_t> owned = owned_ranks();
  const std::vector<std::byte> step_buffers = copy_buffers(*replicas_[0]);
  const int64_t w_count = workers();
  // Every byte that is read is written below (padding records are not read).
  std::byte* block = regions_ ? regions_->writable(0, block_bytes_) : (local_.resize(block_bytes_), local_.data());
  block[0] = std::byte{stop && *stop ? uint8_t{1} : uint8_t{0}};
  std::byte* records = block + kHeader + buffer_bytes_;
  if (direct_) sum_.resize(static_cast<size_t>(slot_floats_));
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
        std::byte* rec = records + i * record_bytes_;
        std::memcpy(rec, &r.loss_sum, 8);
        std::memcpy(rec + 8, &r.correct, 8);
        // The scaled gradient into the rank's slot (or onto the running sum), element by element
        // (vectorized: the same bits). Two passes over the parameters are spared where they can
        // be: a worker's last rank leaves its gradient unzeroed (the next run() zeroes it), and
        // keeps this process's share of it in place, unscaled, for the sum to read there (kept_)
        // — only the other processes' shares go to its slot.
        const bool last_on_worker = i + static_cast<size_t>(w_count) >= owned.size();
        const bool kept = !direct_ && last_on_worker;
        if (kept) kept_[static_cast<size_t>(w)] = {owned[i], r.grad_scale};
        const ElementRange skip = kept ? owned_elements() : ElementRange{0, 0};
        float* out = direct_ ? sum_.data() : reinterpret_cast<float*>(rec + 16);
        const bool add = direct_ && i > 0;
        const float scale = r.grad_scale;
        int64_t offset = 0;
        for (auto& [name, p] : m.parameters()) {
          float* __restrict g = p->grad.data<float>();
          float* __restrict o = out + offset;
          const int64_t n = p->grad.numel();
          const auto [skip_lo, skip_hi] = skip.within(offset, n);
          if (add) {
#pragma omp simd
            for (int64_t k = 0; k < n; ++k) o[k] += g[k] * scale;
          } else {
            for (auto [lo, hi] : {std::pair{int64_t{0}, skip_lo}, std::pair{skip_hi, n}}) {
#pragma omp simd
              for (int64_t k = lo; k < hi; ++k) o[k] = g[k] * scale;
            }
          }
          if (!last_on_worker) std::fill_n(g, n, 0.0f);
          offset += n;
        }
        if (i == 0) {
          const std::vector<std::byte> left = copy_buffers(m);
          if (!left.empty()) std::memcpy(block + kHeader, left.data(), left.size());  // none: a null source
        }
      }
    } catch (...) {
#pragma omp critical
      if (!failure) failure = std::current_exception();
    }
  }
  if (failure) std::rethrow_exception(failure);

  // Every process's block (alone: this one's).
  if (regions_) regions_->publish(0, block_bytes_);
  auto block_of = [&](int64_t p) { return regions_ ? regions_->of(static_cast<int>(p)) : local_.data(); };
  auto record_of = [&](int64_t rank) {
    return block_of(rank % n_proc) + kHeader + buffer_bytes_ + static_cast<size_t>(rank / n_proc) * record_bytes_;
  };
  // This process's share of Σ over ranks, in rank order, element by element (the same additions
  // for any worker and process count).
  const std::vector<Tensor*> grads = tensors_of(*replicas_[0], &Parameter::grad);
  const ElementRange share = owned_elements();
  if (direct_) {
    for_each_run(grads, share, [&](const Run& r) {
      std::memcpy(r.data, sum_.data() + r.at, static_cast<size_t>(r.count) * sizeof(float));
    });
  } else {
    // Each rank's term: its slot, or the gradient a worker kept in place, scaled here (the bits
    // its slot would have held; × 1 is exact).
    struct Term {
      const float* slot = nullptr;                 // from the share's first element
      const std::vector<Tensor*>* kept = nullptr;  // or: the gradients of the worker keeping it
      float scale = 1.0f;
    };
    std::vector<Term> terms(static_cast<size_t>(logical_ranks_));
    for (int64_t rank = 0; rank < logical_ranks_; ++rank)
      terms[static_cast<size_t>(rank)].slot = reinterpret_cast<const float*>(record_of(rank) + 16) + share.begin;
    std::vector<std::vector<Tensor*>> kept_grads(replicas_.size());
    for (size_t w = 0; w < replicas_.size(); ++w) {
      kept_grads[w] = tensors_of(*replicas_[w], &Parameter::grad);
      terms[static_cast<size_t>(kept_[w].first)] = {nullptr, &kept_grads[w], kept_[w].second};
    }
    // In blocks that stay in L1, term after term: each element's additions in rank order, the
    // loops vectorized.
    constexpr int64_t kBlock = 2048;
    for_each_run(grads, share, [&](const Run& r) {
      float* g = r.data;
      const int64_t n = r.count;
#pragma omp parallel for schedule(static) if (n > 65536)
      for (int64_t b = 0; b < n; b += kBlock) {
        const int64_t len = std::min(kBlock, n - b);
        float sum[kBlock];
        for (int64_t rank = 0; rank < logical_ranks_; ++rank) {
          const Term& t = terms[static_cast<size_t>(rank)];
          const float* __restrict term = t.kept ? (*t.kept)[r.index]->data<float>() + r.lo + b : t.slot + r.at + b;
          const float scale = t.scale;
          if (rank == 0) {
#pragma omp simd
            for (int64_t i = 0; i < len; ++i) sum[i] = term[i] * scale;
          } else {
#pragma omp simd
            for (int64_t i = 0; i < len; ++i) sum[i] += term[i] * scale;
          }
        }
        std::copy_n(sum, len, g + b);
      }
    });
  }
  set_buffers(*replicas_[0], std::vector<std::byte>(block_of(0) + kHeader, block_of(0) + kHeader + buffer_bytes_));
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
    for (int64_t p = 0; p < n_proc; ++p) *stop = *stop || block_of(p)[0] != std::byte{0};
  }
  return total;
}

void DataParallel::update(Optimizer& optimizer, double lr, const std::function<void()>& after) {
  const NamedParameters& params = optimizer.parameters();
  auto mine = replicas_[0]->parameters();
  if (params.size() != mine.size() || !std::equal(params.begin(), params.end(), mine.begin(),
                                                  [](const auto& a, const auto& b) { return a.second == b.second; }))
    throw std::invalid_argument("DataParallel::update: the optimizer is not over the first replica's parameters, in order");
  optimizer.step(lr, owned_elements());
  if (regions_) exchange_shares(tensors_of(*replicas_[0], &Parameter::value));
  if (after) after();
  broadcast_parameters();
}

void DataParallel::gather_optimizer_state(Optimizer& optimizer) {
  if (!regions_) return;
  for (const std::vector<Tensor*>& kind : optimizer.per_parameter_state()) exchange_shares(kind);
}

void DataParallel::gather_gradients() {
  if (regions_) exchange_shares(tensors_of(*replicas_[0], &Parameter::grad));
}

void DataParallel::exchange_shares(const std::vector<Tensor*>& tensors) {
  const size_t bytes = static_cast<size_t>(share_floats_) * sizeof(float);
  auto* out = reinterpret_cast<float*>(regions_->writable(block_bytes_, bytes));
  for_each_run(tensors, owned_elements(), [&](const Run& r) {
    std::memcpy(out + r.at, r.data, static_cast<size_t>(r.count) * sizeof(float));
  });
  regions_->publish(block_bytes_, bytes);
  for (int p = 0; p < processes_->size(); ++p) {
    if (p == processes_->rank()) continue;
    const auto* in = reinterpret_cast<const float*>(regions_->of(p) + block_bytes_);
    for_each_run(tensors, {share_begin_[static_cast<size_t>(p)], share_begin_[static_cast<size_t>(p) + 1]},
                 [&](const Run& r) { std::memcpy(r.data, in + r.at, static_cast<size_t>(r.count) * sizeof(float)); });
  }
}

void DataParallel::broadcast_parameters() {
  auto source = replicas_[0]->parameters();
  const std::vector<std::byte> buffers = copy_buffers(*replicas_[0]);
  for (size_t w = 1; w < replicas_.size(); ++w) {
    // The values themselves, not a copy: the workers only read them while shards run, and an
    // update (or a load that replaced them, hence the assignment) reaches every worker at once.
    auto target = replicas_[w]->parameters();
    for (size_t k = 0; k < source.size(); ++k) target[k].second->value = source[k].second->value;
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
