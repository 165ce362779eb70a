#include "experiments/linear_regression.h"

#include <fmt/format.h>

#include <cmath>

#include "core/config/error.h"

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

    Tensor w = Tensor::zeros({d.features, 1}, DType::kF32);
    int64_t start = 0;
    if (auto payload = ctx.restore()) {
      jobs::ByteReader r(*payload);
      start = r.get<int64_t>();
      std::vector<float> wv = r.get_vector<float>();
      std::copy(wv.begin(), wv.end(), w.data<float>());
    }
    results::Table& steps = ctx.table("/train/steps", {
        {"step", results::ColumnType::kInt64, "steps", "SGD step (1-based)"},
        {"loss", results::ColumnType::kFloat64, "", "mean squared error of the step's batch"},
        {"weight_error", results::ColumnType::kFloat64, "", "L2 distance between w and the true weights"},
    });

    Tensor xd = x.to(dev), yd = y.to(dev), wd = w.to(dev);
    runtime::Progress progress("train", t.steps);
    progress.set(start);
    for (int64_t step = start; step < t.steps; ++step) {
      if (ctx.should_stop()) {
        save(ctx, step, wd);
        ctx.log().info("stop requested: checkpoint saved at step {}", step);
        return jobs::RunOutcome::kPreempted;
      }
      // The batch of step s depends only on (seed, s): resuming needs no RNG state.
      auto rb = ctx.rng(kBatchBase + static_cast<uint64_t>(step));
      Tensor xb = Tensor::empty({t.batch_size, d.features}, DType::kF32);
      Tensor yb = Tensor::empty({t.batch_size, 1}, DType::kF32);
      for (int64_t i = 0; i < t.batch_size; ++i) {
        int64_t row = static_cast<int64_t>(rb.below(static_cast<uint64_t>(d.samples)));
        std::copy_n(x.data<float>() + row * d.features, d.features, xb.data<float>() + i * d.features);
        yb.data<float>()[i] = y.data<float>()[row];
      }
      Tensor xbd = xb.to(dev), ybd = yb.to(dev);
      Tensor r = tensor::sub(tensor::matmul(xbd, wd), ybd);
      double loss = tensor::sum(tensor::mul(r, r)).to_vector()[0] / static_cast<double>(t.batch_size);
      Tensor grad = tensor::scale(tensor::matmul(xbd.transpose(0, 1), r), 2.0 / static_cast<double>(t.batch_size));
      wd = tensor::sub(wd, tensor::scale(grad, t.lr));
      steps.append({step + 1, loss, distance(wd, w_true)});
      progress.set(step + 1);
      if (t.checkpoint_every > 0 && (step + 1) % t.checkpoint_every == 0 && step + 1 < t.steps)
        save(ctx, step + 1, wd);
    }
    progress.finish();
    // A finished run has one row per step; "complete" is never written over missing rows.
    if (steps.rows() != t.steps)
      throw std::runtime_error(fmt::format("{}: /train/steps holds {} rows where {} steps ran; not marking the run complete",
                                           (ctx.output_dir() / "results.h5").string(), steps.rows(), t.steps));

    Tensor full_r = tensor::sub(tensor::matmul(xd, wd), yd);
    double mse = tensor::sum(tensor::mul(full_r, full_r)).to_vector()[0] / static_cast<double>(d.samples);
    ctx.set_summary("final_mse", mse);
    ctx.set_summary("noise_floor_mse", d.noise * d.noise);
    ctx.set_summary("weight_error", distance(wd, w_true));
    ctx.set_summary("steps", t.steps);
    ctx.set_summary("device", t.device);
    return jobs::RunOutcome::kDone;
  }

 private:
  static double distance(const Tensor& w, const Tensor& w_true) {
    Tensor diff = tensor::sub(w.to(Device::kCPU), w_true);
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
