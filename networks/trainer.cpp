#include "networks/trainer.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <exception>
#include <numeric>
#include <stdexcept>

#include "core/nn/loss.h"
#include "networks/topology.h"

namespace xp::networks {

namespace {
constexpr uint64_t kOrderStream = 10000;  // + epoch: the batch order of each epoch
constexpr const char* kPositionKey = "trainer.position";
}  // namespace

Trainer::Trainer(Network& net, TrainOptions options, uint64_t seed, dist::ProcessGroup* processes)
    : net_(net), opt_(std::move(options)), seed_(seed) {
  opt_.workers = nn::resolve_workers({opt_.logical_ranks, opt_.workers, opt_.collective_timeout_s}, processes);
  if (opt_.epochs < 0 || opt_.batch_size <= 0)
    throw std::invalid_argument(fmt::format("train: epochs must be ≥ 0 and batch_size > 0 (got {}, {})", opt_.epochs,
                                            opt_.batch_size));
  if (opt_.device != "cpu" && opt_.device != "cuda")
    throw std::invalid_argument(fmt::format("train.device '{}' is not cpu or cuda", opt_.device));
  if (opt_.device == "cuda") {
    if (!tensor::cuda_available())
      throw std::invalid_argument("train.device is cuda but no GPU is visible (or this build has no CUDA): set train.device=cpu");
    if (opt_.logical_ranks > 1 || opt_.workers > 1)
      throw std::invalid_argument(
          "train.device is cuda: logical ranks and workers run on the CPU only (set train.logical_ranks=1 train.workers=1)");
    net.module().to(tensor::Device::kCUDA);  // before the optimizer is made: its moments go there too
  }
  if (opt_.optimizer == "adam" || opt_.optimizer == "adamw")
    optimizer_ = std::make_unique<nn::Adam>(
        net.module().parameters(), nn::AdamOptions{.weight_decay = opt_.weight_decay, .decoupled = opt_.optimizer == "adamw"});
  else if (opt_.optimizer == "sgd")
    optimizer_ = std::make_unique<nn::Sgd>(net.module().parameters(),
                                           nn::SgdOptions{.momentum = opt_.momentum, .weight_decay = opt_.weight_decay});
  else
    throw std::invalid_argument(fmt::format("train.optimizer '{}' is not one of {}", opt_.optimizer, fmt::join(optimizer_names(), ", ")));
  if (opt_.schedule != "constant" && opt_.schedule != "cosine")
    throw std::invalid_argument(fmt::format("train.schedule '{}' is not constant or cosine", opt_.schedule));
  if (opt_.device == "cpu")
    world_ = std::make_unique<nn::TrainingWorld>(
        net.module(),
        [&net, seed] {
          auto replica = std::make_shared<Network>(net.spec(), seed);
          return std::shared_ptr<nn::Module>(replica, &replica->module());
        },
        nn::WorldOptions{opt_.logical_ranks, opt_.workers, opt_.collective_timeout_s}, processes);
}

const std::vector<std::string>& optimizer_names() {
  static const std::vector<std::string> names{"adam", "adamw", "sgd"};
  return names;
}

int64_t Trainer::batches_per_epoch(const data::Dataset& train) const {
  return (train.size() + opt_.batch_size - 1) / opt_.batch_size;
}

StepResult Trainer::step(const data::Dataset& train, bool stop) {
  if (done()) throw std::logic_error("Trainer::step after the last epoch");
  if (order_epoch_ != epoch_) {
    order_ = data::permutation(train.size(), runtime::RngStream(seed_, kOrderStream + static_cast<uint64_t>(epoch_)));
    order_epoch_ = epoch_;
  }
  const int64_t begin = batch_ * opt_.batch_size;
  const int64_t n = std::min(opt_.batch_size, train.size() - begin);
  std::span<const int64_t> rows(order_.data() + begin, static_cast<size_t>(n));
  StepResult result{0.0, 0, n, stop};
  if (world_) {
    // Logical rank r trains on the batch's r-th contiguous share.
    const int64_t ranks = opt_.logical_ranks;
    auto total_of = world_->data_parallel().run([&](int64_t rank, nn::Module& m) -> nn::DataParallel::ShardResult {
      const int64_t lo = rank * n / ranks, hi = (rank + 1) * n / ranks;
      if (hi == lo) return {0.0, 0, 0.0f};
      auto shard = rows.subspan(static_cast<size_t>(lo), static_cast<size_t>(hi - lo));
      nn::LossResult r = nn::nll_loss(m.forward(data::batch_features(train, shard), nn::Mode::kTrain),
                                      data::batch_labels(train, shard));
      m.backward(r.grad);
      return {r.loss * static_cast<double>(hi - lo), r.correct, static_cast<float>(hi - lo) / static_cast<float>(n)};
    }, &result.stop);
    result.loss = total_of.loss_sum;
    result.correct = total_of.correct;
  } else {
    nn::Module& m = net_.module();
    m.zero_grad();
    nn::LossResult r = nn::nll_loss(m.forward(data::batch_features(train, rows).to(net_.device()), nn::Mode::kTrain),
                                    data::batch_labels(train, rows));
    m.backward(r.grad);
    result.loss = r.loss * static_cast<double>(n);
    result.correct = r.correct;
  }
  const int64_t total = opt_.epochs * batches_per_epoch(train);
  const double lr = opt_.schedule == "cosine" ? nn::cosine_lr(opt_.lr, optimizer_->steps(), total) : opt_.lr;
  if (world_) {
    world_->data_parallel().update(*optimizer_, lr, [this] { net_.after_step(); });
    state_whole_ = false;
  } else {
    optimizer_->step(lr);
    net_.after_step();
  }
  if (++batch_ == batches_per_epoch(train)) {
    batch_ = 0;
    ++epoch_;
  }
  return result;
}

void Trainer::gather_gradients() {
  if (world_) world_->data_parallel().gather_gradients();
}

nn::StateDict Trainer::state() {
  if (world_ && !state_whole_) world_->data_parallel().gather_optimizer_state(*optimizer_);
  state_whole_ = true;
  nn::StateDict sd = nn::state_dict(net_.module(), optimizer_.get());
  nn::Tensor position = nn::Tensor::empty({2}, tensor::DType::kI64);
  position.data<int64_t>()[0] = epoch_;
  position.data<int64_t>()[1] = batch_;
  sd.emplace_back(kPositionKey, position);
  return sd;
}

void Trainer::load(const nn::StateDict& sd) {
  nn::StateDict rest;
  nn::Tensor position;
  for (const auto& [name, t] : sd) {
    if (name == kPositionKey) position = t;
    else rest.emplace_back(name, t);
  }
  if (!position.defined() || position.numel() != 2 || position.dtype() != tensor::DType::kI64)
    throw nn::StateDictError(fmt::format("state dict has no '{}' (not a training checkpoint?)", kPositionKey));
  nn::load_state_dict(rest, net_.module(), optimizer_.get());
  epoch_ = position.data<int64_t>()[0];
  batch_ = position.data<int64_t>()[1];
  state_whole_ = true;
  if (world_) world_->data_parallel().broadcast_parameters();
}

Evaluation evaluate(Network& net, const data::Dataset& d, int64_t batch_size) {
  // Batches at once on the CPU cores (a forward in eval mode only reads the model); inside a
  // parallel region Eigen's products run single-threaded, so every batch has the same bits on
  // any thread, and the losses are added in batch order afterwards.
  const int64_t batches = (d.size() + batch_size - 1) / batch_size;
  std::vector<double> losses(static_cast<size_t>(batches));
  std::vector<std::vector<int32_t>> predictions(static_cast<size_t>(batches));
  const tensor::Device device = net.device();
  std::exception_ptr failure;
#pragma omp parallel for schedule(dynamic, 1) if (device == tensor::Device::kCPU && batches > 1)
  for (int64_t b = 0; b < batches; ++b) {
    try {
      const int64_t begin = b * batch_size, n = std::min(batch_size, d.size() - begin);
      std::vector<int64_t> rows(static_cast<size_t>(n));
      std::iota(rows.begin(), rows.end(), begin);
      nn::Tensor logp = net.module().forward(data::batch_features(d, rows).to(device), nn::Mode::kEval);
      losses[static_cast<size_t>(b)] = nn::nll_loss(logp, data::batch_labels(d, rows)).loss * static_cast<double>(n);
      predictions[static_cast<size_t>(b)] = nn::argmax_rows(logp);
    } catch (...) {
#pragma omp critical
      if (!failure) failure = std::current_exception();
    }
  }
  if (failure) std::rethrow_exception(failure);
  Evaluation e;
  e.predictions.reserve(static_cast<size_t>(d.size()));
  for (int64_t b = 0; b < batches; ++b) {
    e.loss += losses[static_cast<size_t>(b)];
    e.predictions.insert(e.predictions.end(), predictions[static_cast<size_t>(b)].begin(),
                         predictions[static_cast<size_t>(b)].end());
  }
  e.accuracy = accuracy(e.predictions, d);
  e.loss = d.size() ? e.loss / static_cast<double>(d.size()) : 0.0;
  return e;
}

}  // namespace xp::networks
