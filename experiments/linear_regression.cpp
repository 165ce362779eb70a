#include "experiments/linear_regression.h"

#include <fmt/format.h>

#include <cmath>
#include <span>

#include "core/config/error.h"
#include "core/nn/data_parallel.h"
#include "core/nn/linear.h"
#include "core/nn/optim.h"
#include "core/runtime/progress.h"
#include "core/tensor/ops.h"

namespace xp::experiments {
namespace {

using tensor::Device;
using tensor::DType;
using tensor::Tensor;

struct DataConfig {
  int64_t samples = 4096;  // rows of X
  int64_t features = 32;   // columns of X (and length of w)
  double noise = 0.1;      // std of the additive Gaussian noise on y
};

struct TrainConfig {
  int64_t steps = 300;            // SGD steps
  int64_t batch_size = 64;        // rows per step, drawn with replacement
  double lr = 0.05;               // learning rate
  int64_t checkpoint_every = 50;  // steps between checkpoints (0 = only on preemption)
  std::string device = "cpu";     // cpu | cuda
  // The logical world (core/nn/data_parallel.h): the batch splits into this many contiguous
  // shards whose gradients add in rank order; results depend on it, never on the workers (threads)
  // or the processes (mpirun, srun) running the ranks. CPU only.
  nn::WorldOptions world;
};

struct Config {
  DataConfig data;
  TrainConfig train;
};

Config parse(const config::ConfigNode& job) {
  Config c;
  auto top = top_level_reader(job);
  auto d = top.section("data");
  d.get("samples", c.data.samples, Range::at_least(1));
  d.get("features", c.data.features, Range::at_least(1));
  d.get("noise", c.data.noise, Range::non_negative());
  d.finish();
  auto t = top.section("train");
  t.get("steps", c.train.steps, Range::non_negative());
  t.get("batch_size", c.train.batch_size, Range::at_least(1));
  t.get("lr", c.train.lr, Range::positive());
  t.get("checkpoint_every", c.train.checkpoint_every, Range::non_negative());
  t.get_enum("device", c.train.device, {"cpu", "cuda"});
  t.get("logical_ranks", c.train.world.logical_ranks, Range::between(1, 1024));
  t.get("workers", c.train.world.workers, Range::between(0, 1024));
  t.get("collective_timeout_s", c.train.world.collective_timeout_s, Range::between(0.1, 86400));
  t.finish();
  top.finish();
  auto positive = [&job](int64_t v, const char* key) {
    if (v > 0) return;
    const config::ConfigNode* n = job.at_path(key);
    throw config::ConfigError(fmt::format("must be positive, got {}", v), n ? n->loc() : config::SourceLoc{}, key,
                              fmt::format("set {}=<a value > 0>", key));
  };
  if (c.train.device == "cuda" && !tensor::cuda_available())
    throw config::ConfigError("train.device=cuda, but no CUDA device is visible", job.at_path("train.device")->loc(),
                              "train.device", "use train.device=cpu on this machine");
  if (c.train.device == "cuda" && (c.train.world.logical_ranks > 1 || c.train.world.workers > 1))
    throw config::ConfigError("logical ranks and workers run on the CPU only", job.at_path("train.device")->loc(),
                              "train.device", "set train.logical_ranks=1 train.workers=1, or train.device=cpu");
  positive(c.data.samples, "data.samples");
  positive(c.data.features, "data.features");
  positive(c.train.batch_size, "train.batch_size");
  if (c.train.steps < 0)
    throw config::ConfigError("must not be negative", job.at_path("train.steps")->loc(), "train.steps",
                              "set train.steps=<0 or more>");
  return c;
}

// RNG stream ids: each consumer has its own, so changing one never shifts another.
enum Stream : uint64_t { kFeatures = 1, kTrueWeights = 2, kNoise = 3, kBatchBase = 1000 };

class LinearRegression final : public Experiment {
 public:
  explicit LinearRegression(Config c) : cfg_(std::move(c)) {}

  // Under mpirun/srun every process trains its share of the logical ranks.
  bool runs_as_spmd() const override { return true; }

  jobs::RunOutcome run(jobs::RunContext& ctx) override {
    const auto& d = cfg_.data;
    const auto& t = cfg_.train;
    Device dev = t.device == "cuda" ? Device::kCUDA : Device::kCPU;

    // The data set is a pure function of the seed.
    Tensor x = Tensor::empty({d.samples, d.features}, DType::kF32);
    Tensor w_true = Tensor::empty({d.features, 1}, DType::kF32);
    Tensor noise = Tensor::empty({d.samples, 1}, DType::kF32);
    auto rx = ctx.rng(kFeatures), rw = ctx.rng(kTrueWeights), rn = ctx.rng(kNoise);
    tensor::fill_normal(x, rx);
    tensor::fill_normal(w_true, rw);
    tensor::fill_normal(noise, rn, 0.0, d.noise);
    Tensor y = tensor::add(tensor::matmul(x, w_true), noise);

    // The model: y ≈ x·wᵀ, w starting at zero; plain SGD.
    auto make_model = [&] {
      auto m = std::make_shared<nn::Linear>(d.features, 1, /*bias=*/false);
      m->weight().value = Tensor::zeros({1, d.features}, DType::kF32);
      m->weight().grad = Tensor::zeros({1, d.features}, DType::kF32);
      m->set_input_grad(false);  // fed by data
      return m;
    };
    std::shared_ptr<nn::Linear> model = make_model();
    int64_t start = 0;
    if (auto payload = ctx.restore()) {
      jobs::ByteReader r(*payload);
      start = r.get<int64_t>();
      std::vector<float> wv = r.get_vector<float>();
      std::copy(wv.begin(), wv.end(), model->weight().value.data<float>());
    }
    model->to(dev);
    nn::Sgd sgd(model->parameters(), {});
    std::unique_ptr<nn::TrainingWorld> world;
    if (dev == Device::kCPU) world = std::make_unique<nn::TrainingWorld>(*model, make_model, t.world, ctx.processes());
    results::Table& steps = ctx.table("/train/steps", {
        {"step", results::ColumnType::kInt64, "steps", "SGD step (1-based)"},
        {"loss", results::ColumnType::kFloat64, "", "mean squared error of the step's batch"},
        {"weight_error", results::ColumnType::kFloat64, "", "L2 distance between w and the true weights"},
    });

    runtime::Progress progress("train", t.steps);
    progress.set(start);
    for (int64_t step = start; step < t.steps; ++step) {
      // The batch of step s depends only on (seed, s): resuming needs no RNG state.
      auto rb = ctx.rng(kBatchBase + static_cast<uint64_t>(step));
      std::vector<int64_t> rows(static_cast<size_t>(t.batch_size));
      for (auto& row : rows) row = static_cast<int64_t>(rb.below(static_cast<uint64_t>(d.samples)));
      bool stop = ctx.should_stop();
      double loss = 0.0;
      if (world) {
        // Logical rank r fits the batch's r-th contiguous share.
        const int64_t ranks = t.world.logical_ranks, n = t.batch_size;
        loss = world->data_parallel().run([&](int64_t rank, nn::Module& m) -> nn::DataParallel::ShardResult {
          const int64_t lo = rank * n / ranks, hi = (rank + 1) * n / ranks;
          if (hi == lo) return {0.0, 0, 0.0f};
          return {fit_batch(m, x, y, std::span(rows).subspan(static_cast<size_t>(lo), static_cast<size_t>(hi - lo)), n),
                  0, 1.0f};
        }, &stop).loss_sum;
      } else {
        model->zero_grad();
        loss = fit_batch(*model, x, y, rows, t.batch_size);
      }
      if (world) world->data_parallel().update(sgd, t.lr);
      else sgd.step(t.lr);
      loss /= static_cast<double>(t.batch_size);
      if (ctx.writes()) steps.append({step + 1, loss, distance(model->weight().value, w_true)});
      progress.set(step + 1);
      if (stop && step + 1 < t.steps) {  // every process stops after this same step
        save(ctx, step + 1, model->weight().value);
        ctx.log().info("stop requested: checkpoint saved at step {}", step + 1);
        return jobs::RunOutcome::kPreempted;
      }
      if (t.checkpoint_every > 0 && (step + 1) % t.checkpoint_every == 0 && step + 1 < t.steps)
        save(ctx, step + 1, model->weight().value);
    }
    progress.finish();
    // A finished run has one row per step; "complete" is never written over missing rows.
    if (ctx.writes() && steps.rows() != t.steps)
      throw std::runtime_error(fmt::format("{}: /train/steps holds {} rows where {} steps ran; not marking the run complete",
                                           (ctx.output_dir() / "results.h5").string(), steps.rows(), t.steps));

    Tensor wd = model->weight().value.transpose(0, 1);
    Tensor full_r = tensor::sub(tensor::matmul(x.to(dev), wd), y.to(dev));
    double mse = tensor::sum(tensor::mul(full_r, full_r)).to_vector()[0] / static_cast<double>(d.samples);
    ctx.set_summary("final_mse", mse);
    ctx.set_summary("noise_floor_mse", d.noise * d.noise);
    ctx.set_summary("weight_error", distance(model->weight().value, w_true));
    ctx.set_summary("steps", t.steps);
    ctx.set_summary("device", t.device);
    return jobs::RunOutcome::kDone;
  }

 private:
  // Forward and backward of `rows` on `model` (its weight gradient gets d/dw of the batch's mean
  // squared error, the batch being `batch_size` rows); returns the rows' summed squared error.
  static double fit_batch(nn::Module& model, const Tensor& x, const Tensor& y, std::span<const int64_t> rows,
                          int64_t batch_size) {
    const auto n = static_cast<int64_t>(rows.size()), f = x.size(1);
    Tensor xb = Tensor::empty({n, f}, DType::kF32);
    Tensor yb = Tensor::empty({n, 1}, DType::kF32);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t row = rows[static_cast<size_t>(i)];
      std::copy_n(x.data<float>() + row * f, f, xb.data<float>() + i * f);
      yb.data<float>()[i] = y.data<float>()[row];
    }
    const tensor::Device dev = model.parameters().front().second->value.device();
    Tensor r = tensor::sub(model.forward(xb.to(dev), nn::Mode::kTrain), yb.to(dev));
    model.backward(tensor::scale(r, 2.0 / static_cast<double>(batch_size)));
    return tensor::sum(tensor::mul(r, r)).to_vector()[0];
  }

  // w: the model's weight [1, features].
  static double distance(const Tensor& w, const Tensor& w_true) {
    Tensor diff = tensor::sub(w.to(Device::kCPU).transpose(0, 1), w_true);
    return std::sqrt(tensor::sum(tensor::mul(diff, diff)).to_vector()[0]);
  }

  static void save(jobs::RunContext& ctx, int64_t step, const Tensor& w) {
    Tensor wc = w.to(Device::kCPU);
    jobs::ByteWriter out;
    out.put<int64_t>(step);
    out.put_vector(std::vector<float>(wc.data<float>(), wc.data<float>() + wc.numel()));
    ctx.save_checkpoint(static_cast<uint64_t>(step), out);
  }

  Config cfg_;
};

}  // namespace

std::unique_ptr<Experiment> make_linear_regression(const config::ConfigNode& job_config) {
  return std::make_unique<LinearRegression>(parse(job_config));
}

}  // namespace xp::experiments
