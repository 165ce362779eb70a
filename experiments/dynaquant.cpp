#include "experiments/dynaquant.h"

#include <fmt/format.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>

#include <omp.h>

#include "compression/checkpoint_pipeline.h"
#include "compression/codec.h"
#include "compression/optimizer_state.h"
#include "compression/search.h"
#include "core/config/error.h"
#include "core/runtime/progress.h"
#include "networks/trainer.h"

namespace xp::experiments {
namespace {

namespace cz = compression;
using Clock = std::chrono::steady_clock;

struct Config {
  std::string dataset = "fashion_mnist";  // fashion_mnist | digits
  std::string path;                       // "" = where Debian installs it
  int64_t validation = 2000;              // held-out training samples: the search's quality set
  int64_t digits_test = 497;              // digits only: the test set
  std::vector<int64_t> layers{784, 256, 128, 10};
  std::string model = "mlp";              // mlp (Model A) | lenet (Model B, Fashion-MNIST only)
  networks::TrainOptions train{.epochs = 20, .batch_size = 128};
  int64_t checkpoints_per_epoch = 2;
  int64_t failures = 10;                  // evenly spaced; each restores the latest checkpoint
  int64_t ema_window = 50;                // steps before a checkpoint whose gradients feed the EMA
  double ema_beta = 0.9;
  std::string method = "dynaquant";       // compression::codec_names()
  std::string optimizer_state = "fp32";   // compression::optimizer_state_policy_names()
  cz::CompressorOptions dq;
  std::string layout = "rearranged";      // rearranged | rle | huffman
  bool bins_table = false;                // also measure the one-shot bins needed (ours vs uniform and CNR)
  bool overlap = true;                    // compress on a background worker while training goes on
};

constexpr int64_t kFashionMnistTrain = 60000;  // the training split's size

Config parse(const config::ConfigNode& job) {
  Config c;
  auto top = top_level_reader(job);
  auto d = top.section("data");
  d.get_enum("dataset", c.dataset, {"fashion_mnist", "digits"});
  d.get("path", c.path);
  d.get("validation", c.validation, Range::non_negative());
  d.get("digits_test", c.digits_test, Range::at_least(1));
  d.finish();
  auto n = top.section("network");
  n.get("layers", c.layers, Range::at_least(1));
  n.get_enum("model", c.model, {"mlp", "lenet"});
  n.finish();
  if (c.model == "lenet" && c.dataset != "fashion_mnist")
    reject_key(job, "network.model", "lenet takes 28x28 images", "use data.dataset=fashion_mnist or network.model=mlp");
  auto t = top.section("train");
  t.get("epochs", c.train.epochs, Range::at_least(1));
  t.get("batch_size", c.train.batch_size, Range::at_least(1));
  t.get_enum("optimizer", c.train.optimizer, {"adam", "sgd"});
  t.get("lr", c.train.lr, Range::positive());
  t.get("momentum", c.train.momentum, Range::between(0, 1).open_above());
  t.get("checkpoints_per_epoch", c.checkpoints_per_epoch, Range::at_least(1));
  t.get("logical_ranks", c.train.logical_ranks, Range::between(1, 1024));
  t.get("workers", c.train.workers, Range::between(0, 1024));
  t.get("collective_timeout_s", c.train.collective_timeout_s, Range::between(0.1, 86400));
  t.get("failures", c.failures, Range::non_negative());
  t.get("ema_window", c.ema_window, Range::at_least(1));
  t.get("ema_beta", c.ema_beta, Range::between(0, 1).open_above());
  t.finish();
  auto z = top.section("compression");
  z.get_enum("method", c.method, cz::codec_names());
  z.get_enum("optimizer_state", c.optimizer_state, cz::optimizer_state_policy_names());
  z.get("epsilon", c.dq.epsilon, Range::between(0, 1).open_above());
  z.get("search", c.dq.search);
  z.get("bins", c.dq.base.bins, Range::between(1, 1024));
  z.get("prune_fraction", c.dq.base.prune_fraction, Range::between(0, 1).open_above());
  std::string metric = "magnitude";
  z.get_enum("prune_metric", metric, {"magnitude", "sensitivity"});
  c.dq.base.prune_metric = metric == "magnitude" ? cz::PruneMetric::kMagnitude : cz::PruneMetric::kSensitivity;
  z.get("protect_fraction", c.dq.base.protect_fraction, Range::fraction());
  z.get("sigma", c.dq.base.sigma, Range::positive());
  z.get("full_every_n", c.dq.full_every_n, Range::non_negative());
  c.dq.search_threads = 0;
  z.get("search_threads", c.dq.search_threads, Range::between(0, 4096));
  if (c.dq.search_threads < 0) reject_key(job, "compression.search_threads", "must not be negative", "0 uses every core");
  if (c.dq.search_threads == 0) c.dq.search_threads = omp_get_max_threads();
  z.get_enum("layout", c.layout, {"rearranged", "rle", "huffman"});
  z.get("bins_table", c.bins_table);
  z.get("overlap", c.overlap);
  c.dq.layout = c.layout == "rearranged" ? cz::DeltaLayout::kRearranged
                : c.layout == "rle"      ? cz::DeltaLayout::kRleHuffman
                                         : cz::DeltaLayout::kHuffmanOnly;
  z.finish();
  top.finish();
  const int64_t in = c.dataset == "digits" ? 64 : 784;
  if (c.layers.size() < 2 || c.layers.front() != in || c.layers.back() != 10)
    reject_key(job, "network.layers", fmt::format("must start with the {} input size {} and end with 10 classes", c.dataset, in),
        fmt::format("e.g. network.layers=[{},256,128,10]", in));
  // The held-out sets must leave training samples: checked here, before a run directory exists.
  int64_t available = kFashionMnistTrain;
  if (c.dataset == "digits") {
    const int64_t all =
        data::load_digits(c.path.empty() ? data::default_digits_path() : std::filesystem::path(c.path)).size();
    if (c.digits_test >= all)
      reject_key(job, "data.digits_test", fmt::format("holds out {} of the {} digits samples for testing", c.digits_test, all),
                 "the default is 497");
    available = all - c.digits_test;
  }
  if (c.validation >= available)
    reject_key(job, "data.validation",
               fmt::format("cannot hold out {} of the {} {} training samples for validation", c.validation, available, c.dataset),
               fmt::format("e.g. data.validation={}", available / 4));
  return c;
}

// Named model weights ("0.weight", ...) copied out of / into a module.
nn::StateDict weights_of(nn::Module& m) {
  nn::StateDict sd;
  for (auto& [name, p] : m.parameters()) sd.emplace_back(name, p->value.clone());
  return sd;
}
void load_weights(nn::Module& m, const nn::StateDict& sd) {
  auto params = m.parameters();
  if (params.size() != sd.size()) throw cz::ContainerError("checkpoint has a different number of tensors than the model");
  for (size_t i = 0; i < sd.size(); ++i) {
    if (params[i].first != sd[i].first || params[i].second->value.shape() != sd[i].second.shape())
      throw cz::ContainerError(fmt::format("checkpoint tensor '{}' does not fit the model's '{}'", sd[i].first, params[i].first));
    std::memcpy(params[i].second->value.raw_data(), sd[i].second.raw_data(), sd[i].second.nbytes());
  }
}

// Networks for the search's quality evaluations, one per concurrent caller: the search checks
// several candidates at once (compression.search_threads).
class EvaluationNets {
 public:
  explicit EvaluationNets(networks::NetworkSpec spec) : spec_(std::move(spec)) {}
  double accuracy(const nn::StateDict& weights, const data::Dataset& d) {
    std::unique_ptr<networks::Network> net;
    {
      std::lock_guard lock(mutex_);
      if (!free_.empty()) {
        net = std::move(free_.back());
        free_.pop_back();
      }
    }
    if (!net) net = std::make_unique<networks::Network>(spec_, 0);  // weights are overwritten
    load_weights(net->module(), weights);
    const double a = networks::evaluate(*net, d).accuracy;
    std::lock_guard lock(mutex_);
    free_.push_back(std::move(net));
    return a;
  }

 private:
  networks::NetworkSpec spec_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<networks::Network>> free_;
};

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

class Dynaquant final : public Experiment {
 public:
  explicit Dynaquant(Config c) : cfg_(std::move(c)) {}
  // Under mpirun/srun every process trains its share of the logical ranks and runs the same
  // (deterministic) compression and simulated failures, so every process restores the same
  // weights; only process 0 writes the compressed files and the results.
  bool runs_as_spmd() const override { return true; }

  jobs::RunOutcome run(jobs::RunContext& ctx) override {
    load_data(ctx.seed());
    const networks::NetworkSpec spec = network_spec();
    networks::Network net(spec, ctx.seed());
    networks::Trainer trainer(net, cfg_.train, ctx.seed(), ctx.processes());
    evaluation_ = std::make_unique<EvaluationNets>(spec);
    auto quality = [&](const nn::StateDict& w) { return evaluation_->accuracy(w, validation_); };
    codec_ = cz::make_codec(cfg_.method, cfg_.dq, quality);
    cz::GradientEma ema(cfg_.ema_beta);
    const auto dir = ctx.output_dir() / "compressed";
    if (ctx.writes()) std::filesystem::create_directories(dir);
    pipeline_ = std::make_unique<cz::CheckpointPipeline>(
        *codec_, quality,
        cz::CheckpointPipeline::Options{dir, cz::optimizer_state_policy(cfg_.optimizer_state), cfg_.overlap, 4, ctx.writes()},
        [this](const cz::FinishedCheckpoint& done) { record(done); });
    auto payload = ctx.restore();
    open_tables(ctx);  // after restore(): it cuts the tables back to the saved rows
    if (payload) {
      resume(*payload, net, trainer, ema);
      ctx.log().info("resumed at epoch {} batch {}", trainer.epoch(), trainer.batch());
    }

    const int64_t per_epoch = trainer.batches_per_epoch(train_);
    const int64_t total = cfg_.train.epochs * per_epoch;
    const int64_t every = std::max<int64_t>(1, per_epoch / cfg_.checkpoints_per_epoch);
    std::vector<int64_t> failure_at;
    for (int64_t i = 0; i < cfg_.failures; ++i) failure_at.push_back(total * (i + 1) / (cfg_.failures + 1));
    runtime::Progress progress("train", total);
    progress.set(trainer.epoch() * per_epoch + trainer.batch());
    while (!trainer.done()) {
      const bool beside_compression = pipeline_->compressing();
      auto t0 = Clock::now();
      // The stop vote rides on the step's gradient exchange: every process stops after it.
      const bool stop = trainer.step(train_, ctx.should_stop()).stop;
      ++totals_.iterations;
      const double step_s = seconds_since(t0);
      totals_.train_s += step_s;
      (beside_compression ? totals_.steps_beside : totals_.steps_alone).add(step_s);
      const int64_t step = trainer.epoch() * per_epoch + trainer.batch();
      progress.set(step);
      const int64_t to_checkpoint = (every - step % every) % every;
      // The bins table's protected column needs the sensitivity scores even in an uncompressed run.
      if ((cfg_.method == "dynaquant" || cfg_.bins_table) && to_checkpoint < cfg_.ema_window) {
        trainer.gather_gradients();
        for (auto& [name, p] : net.module().parameters()) ema.update(name, p->grad);
      }
      if (step % every == 0) {
        checkpoint(net, trainer, ema.values(), step);
        if (cfg_.bins_table && (step / every) % std::max<int64_t>(1, total / every / 10) == 0) bins_needed(step, net, quality, ema.values());
        ema.reset();
      }
      if (trainer.batch() == 0) epochs_->append({trainer.epoch(), networks::evaluate(net, test_).accuracy});
      if (totals_.next_failure < failure_at.size() && step >= failure_at[totals_.next_failure] && (saved_.step > 0 || !pipeline_->empty())) {
        // The failure strikes once the checkpoints in flight are on disk, so that what it
        // restores does not depend on timing. A real failure would not wait (it would lose
        // them), so this wait is the simulation's, kept out of the compression's stall.
        const int64_t on_disk = saved_.step;
        const auto wait_start = Clock::now();
        pipeline_->finish_all();
        totals_.failure_wait_s += seconds_since(wait_start);
        totals_.real_failure_lost_steps += step - on_disk;
        restore(net, trainer, step, on_disk);
        ++totals_.next_failure;
      }
      if (stop && !trainer.done()) {
        wait_for_pending();
        save(ctx, trainer, ema);
        ctx.log().info("stop requested: saved at epoch {} batch {}", trainer.epoch(), trainer.batch());
        return jobs::RunOutcome::kPreempted;
      }
      if (step % every == 0 && !trainer.done() && pipeline_->can_save()) save(ctx, trainer, ema);  // a crash resumes from here
    }
    wait_for_pending();
    progress.finish();
    ctx.set_summary("final_weights_xxh3", nn::fingerprint(weights_of(net.module())));
    summarize(ctx, net);
    return jobs::RunOutcome::kDone;
  }

 private:
  void load_data(uint64_t seed) {
    if (cfg_.dataset == "digits") {
      auto all = data::load_digits(cfg_.path.empty() ? data::default_digits_path() : std::filesystem::path(cfg_.path));
      auto [test, rest] = data::split(all, cfg_.digits_test, runtime::RngStream(seed, 1));
      test_ = std::move(test);
      auto [val, train] = data::split(rest, cfg_.validation, runtime::RngStream(seed, 2));
      validation_ = std::move(val);
      train_ = std::move(train);
    } else {
      auto dir = cfg_.path.empty() ? data::default_fashion_mnist_dir() : std::filesystem::path(cfg_.path);
      auto [val, train] = data::split(data::load_fashion_mnist(dir, "train"), cfg_.validation, runtime::RngStream(seed, 2));
      validation_ = std::move(val);
      train_ = std::move(train);
      test_ = data::load_fashion_mnist(dir, "test");
    }
  }

  void open_tables(jobs::RunContext& ctx) {
    using results::ColumnType;
    checkpoints_ = &ctx.table("/checkpoints", {
        {"step", ColumnType::kInt64, "steps", "training step of the checkpoint"},
        {"bytes", ColumnType::kInt64, "bytes", "compressed weights"},
        {"raw_bytes", ColumnType::kInt64, "bytes", "the weights as fp32"},
        {"ratio", ColumnType::kFloat64, "", "weights-only compression ratio"},
        {"optimizer_bytes", ColumnType::kInt64, "bytes", "optimizer state as stored (policy optimizer_state)"},
        {"full_state_ratio", ColumnType::kFloat64, "", "(weights + optimizer state) fp32 / stored"},
        {"bins", ColumnType::kInt64, "", "quantization levels chosen (DynaQuant's K; cnr/qd levels; lc buckets; -1: none)"},
        {"prune_fraction", ColumnType::kFloat64, "", "DynaQuant: chosen (NaN for the baselines)"},
        {"prune_metric", ColumnType::kInt64, "", "DynaQuant: 0 magnitude, 1 sensitivity (-1 for the baselines)"},
        {"protect_fraction", ColumnType::kFloat64, "", "DynaQuant: chosen (NaN for the baselines)"},
        {"base", ColumnType::kInt64, "", "1: a base checkpoint (no parent)"},
        {"exhaustive", ColumnType::kInt64, "", "1: the guided exhaustive search ran"},
        {"evaluations", ColumnType::kInt64, "", "quality evaluations of the search"},
        {"quality_live", ColumnType::kFloat64, "", "validation accuracy of the live weights"},
        {"quality_restored", ColumnType::kFloat64, "", "validation accuracy of the decompressed weights"},
        {"encode_s", ColumnType::kFloat64, "s", "search + quantization + encoding"},
        {"decode_s", ColumnType::kFloat64, "s", "decoding the whole chain"},
    });
    failures_ = &ctx.table("/failures", {
        {"step", ColumnType::kInt64, "steps", "step at which the failure struck"},
        {"restored_step", ColumnType::kInt64, "steps", "step of the checkpoint restored"},
        {"on_disk_step", ColumnType::kInt64, "steps",
         "newest checkpoint finished when it struck: a real failure restores this one (in-flight ones are lost)"},
        {"test_accuracy_before", ColumnType::kFloat64, "", "live weights just before the failure"},
        {"test_accuracy_restored", ColumnType::kFloat64, "", "right after the restore"},
    });
    if (cfg_.bins_table)
      bins_ = &ctx.table("/bins_needed", {
          {"step", ColumnType::kInt64, "steps", "checkpoint"},
          {"drop", ColumnType::kFloat64, "", "allowed relative validation-accuracy drop"},
          {"ours", ColumnType::kInt64, "bins", "fewest k-means levels meeting it, nothing protected (-1: none up to 256)"},
          {"ours_protected", ColumnType::kInt64, "bins", "the same with protection, fewest over the search's protect fractions"},
          {"uniform", ColumnType::kInt64, "bins", "fewest per-tensor uniform levels meeting it (-1: none up to 256)"},
          {"cnr", ColumnType::kInt64, "bins", "fewest Check-N-Run adaptive uniform levels meeting it (-1: none up to 256)"},
      });
    epochs_ = &ctx.table("/epochs", {
        {"epoch", ColumnType::kInt64, "epochs", "epochs completed"},
        {"test_accuracy", ColumnType::kFloat64, "", "test accuracy"},
    });
  }

  void checkpoint(networks::Network& net, networks::Trainer& trainer, const std::map<std::string, std::vector<float>>& ema,
                  int64_t step) {
    const auto t0 = Clock::now();
    pipeline_->submit(std::make_shared<const cz::CheckpointSnapshot>(
                          cz::CheckpointSnapshot{step, weights_of(net.module()), trainer.state(), ema}),
                      saved_.chain);
    totals_.stall_s += seconds_since(t0);
  }

  // A checkpoint finished: it becomes the one a failure restores; its row and totals recorded.
  void record(const cz::FinishedCheckpoint& done) {
    const bool ours = cfg_.method == "dynaquant";  // the baselines have no pruning or protection
    const double kNone = std::nan("");
    saved_ = done.stored;
    const cz::CompressedCheckpoint& c = done.details;
    totals_.compress_s += done.encode_s;
    const auto optimizer_stored = static_cast<int64_t>(saved_.optimizer.size());
    const auto bytes = static_cast<int64_t>(c.bytes.size()), raw = static_cast<int64_t>(c.raw_bytes);
    totals_.bytes += bytes;
    totals_.raw += raw;
    totals_.full_stored += bytes + optimizer_stored;
    totals_.full_raw += raw + done.optimizer_raw;
    totals_.peak_ratio = std::max(totals_.peak_ratio, static_cast<double>(raw) / static_cast<double>(bytes));
    totals_.evaluations += c.evaluations;
    checkpoints_->append({saved_.step, bytes, raw, static_cast<double>(raw) / static_cast<double>(bytes), optimizer_stored,
                          static_cast<double>(raw + done.optimizer_raw) / static_cast<double>(bytes + optimizer_stored),
                          static_cast<int64_t>(done.levels), ours ? c.config.prune_fraction : kNone,
                          ours ? static_cast<int64_t>(c.config.prune_metric) : int64_t{-1},
                          ours ? c.config.protect_fraction : kNone,
                          static_cast<int64_t>(c.base), static_cast<int64_t>(c.exhaustive),
                          static_cast<int64_t>(c.evaluations), c.quality_live, c.quality_restored, done.encode_s,
                          done.decode_s});
  }

  // Waits for every checkpoint in flight: the wait is the time compression holds training up.
  void wait_for_pending() {
    const auto t0 = Clock::now();
    pipeline_->finish_all();
    totals_.stall_s += seconds_since(t0);
  }

  networks::NetworkSpec network_spec() const {
    networks::NetworkSpec spec;
    spec.layers = cfg_.layers;
    spec.method = cfg_.model == "lenet" ? "lenet" : "float_mlp";
    return spec;
  }

  void restore(networks::Network& net, networks::Trainer& trainer, int64_t step, int64_t on_disk) {
    const double before = networks::evaluate(net, test_).accuracy;
    trainer.load(cz::decode_optimizer_state(saved_.optimizer, saved_.trainer_state));
    load_weights(net.module(), codec_->restore(saved_.chain, static_cast<uint64_t>(saved_.step)));
    failures_->append({step, saved_.step, on_disk, before, networks::evaluate(net, test_).accuracy});
  }

  // The one-shot table (docs/dynaquant.md): for each per-checkpoint quality drop, the fewest bins
  // that meet it with pruning and protection off — our k-means levels against per-tensor uniform
  // levels (min to max, as QD-Compressor) and Check-N-Run's adaptive uniform ones (per row,
  // clipped range), the paper's "uniform (CNR)".
  template <class Quality>
  void bins_needed(int64_t step, networks::Network& net, const Quality& quality,
                   const std::map<std::string, std::vector<float>>& ema) {
    const nn::StateDict w = weights_of(net.module());
    const double live = quality(w);
    cz::QuantConfig c = cfg_.dq.base;  // the run's σ, α and seed
    c.prune_fraction = c.protect_fraction = 0.0;
    for (double drop : {0.001, 0.01, 0.05}) {
      // Binary search over 2..256 for the fewest bins whose dequantized weights meet the drop
      // (feasibility taken as monotone in the bin count); -1: none.
      auto fewest = [&](auto dequantized) {
        int lo = 2, hi = 256;
        if (quality(dequantized(hi)) < live * (1 - drop)) return -1;
        while (lo < hi) {
          const int mid = (lo + hi) / 2;
          if (quality(dequantized(mid)) >= live * (1 - drop)) hi = mid;
          else lo = mid + 1;
        }
        return lo;
      };
      const int ours = fewest([&](int k) {
        c.bins = c.embedding_bins = k;
        return cz::dequantize(cz::quantize(w, {}, c));
      });
      // The paper's table disables pruning only: the method as searched, protection included
      // (fewest over the search's protect fractions; the protected weights stay bf16).
      int ours_protected = -1;
      for (double protect : cz::ConfigCube{}.protect) {
        cz::QuantConfig p = c;
        p.protect_fraction = protect;
        const int k = fewest([&](int bins) {
          p.bins = p.embedding_bins = bins;
          return cz::dequantize(cz::quantize(w, ema, p));
        });
        if (k > 0 && (ours_protected < 0 || k < ours_protected)) ours_protected = k;
      }
      const int uniform = fewest([&](int k) { return cz::dequantize(cz::quantize_uniform(w, k)); });
      const int cnr = fewest([&](int k) { return cz::cnr_quantized(w, k); });
      bins_->append({step, drop, static_cast<int64_t>(ours), static_cast<int64_t>(ours_protected),
                     static_cast<int64_t>(uniform), static_cast<int64_t>(cnr)});
      if (ours > 0 && ours_protected > 0 && uniform > 0 && cnr > 0) bins_record_[drop].push_back({ours, ours_protected, uniform, cnr});
    }
  }

  // Everything a preempted run needs to go on exactly as if it had not stopped: the live trainer
  // state and gradient EMA, the failure target's checkpoint (chain, optimizer blob, trainer
  // state), the codec's search position, and the running totals. Tables are cut back by the
  // run context.
  //
  // A checkpoint still in flight (compression.overlap) is saved as what it compresses: its EMA and
  // the codec's state before it; its weights and trainer state are the live ones saved below, as
  // this save comes right after the checkpoint. A resume compresses it again to the same bytes.
  void save(jobs::RunContext& ctx, networks::Trainer& trainer, const cz::GradientEma& ema) const {
    if (!pipeline_->can_save()) throw std::logic_error("dynaquant: a save while older checkpoints are in flight");
    jobs::ByteWriter out;
    out.put(totals_);
    out.put<uint64_t>(bins_record_.size());
    for (const auto& [drop, pairs] : bins_record_) {
      out.put<double>(drop);
      out.put_vector(pairs);
    }
    write_ema(out, ema.values());
    out.put<int64_t>(saved_.step);
    out.put<uint64_t>(saved_.chain.size());
    for (const auto& link : saved_.chain) out.put_vector(link);
    out.put_vector(saved_.optimizer);
    nn::write_state_dict(out, saved_.trainer_state);
    const cz::CheckpointSnapshot* in_flight = pipeline_->in_flight();
    out.put<int64_t>(in_flight ? in_flight->step : 0);
    if (in_flight) write_ema(out, in_flight->ema);
    out.put_vector(pipeline_->codec_state());
    nn::write_state_dict(out, trainer.state());
    ctx.save_checkpoint(totals_.iterations, out);  // not the trainer's step: failures move that back
  }

  static void write_ema(jobs::ByteWriter& out, const std::map<std::string, std::vector<float>>& ema) {
    out.put<uint64_t>(ema.size());
    for (const auto& [name, v] : ema) {
      out.put_string(name);
      out.put_vector(v);
    }
  }
  static std::map<std::string, std::vector<float>> read_ema(jobs::ByteReader& in) {
    std::map<std::string, std::vector<float>> ema;
    for (auto n = in.get<uint64_t>(); n > 0; --n) {
      std::string name = in.get_string();
      ema[name] = in.get_vector<float>();
    }
    return ema;
  }

  void resume(const std::vector<std::byte>& payload, networks::Network& net, networks::Trainer& trainer,
              cz::GradientEma& ema) {
    jobs::ByteReader in(payload);
    totals_ = in.get<Totals>();
    for (auto n = in.get<uint64_t>(); n > 0; --n) {
      const double drop = in.get<double>();
      bins_record_[drop] = in.get_vector<std::array<int, 4>>();
    }
    ema.restore(read_ema(in));
    saved_.step = in.get<int64_t>();
    saved_.chain.resize(in.get<uint64_t>());
    for (auto& link : saved_.chain) link = in.get_vector<std::byte>();
    saved_.optimizer = in.get_vector<std::byte>();
    saved_.trainer_state = nn::read_state_dict(in);
    const auto in_flight_step = in.get<int64_t>();
    std::map<std::string, std::vector<float>> in_flight_ema;
    if (in_flight_step > 0) in_flight_ema = read_ema(in);
    const auto codec_bytes = in.get_vector<std::byte>();
    jobs::ByteReader codec_state(codec_bytes);
    codec_->load_state(codec_state);
    if (!saved_.chain.empty()) codec_->restore(saved_.chain, static_cast<uint64_t>(saved_.step));  // the delta parent
    trainer.load(nn::read_state_dict(in));
    if (!in.at_end()) throw jobs::CheckpointError("dynaquant checkpoint: trailing bytes");
    if (in_flight_step > 0)
      pipeline_->submit(std::make_shared<const cz::CheckpointSnapshot>(cz::CheckpointSnapshot{
                            in_flight_step, weights_of(net.module()), trainer.state(), std::move(in_flight_ema)}),
                        saved_.chain);
  }

  void summarize(jobs::RunContext& ctx, networks::Network& net) {
    const double acc = networks::evaluate(net, test_).accuracy;
    ctx.set_summary("method", cfg_.method);
    ctx.set_summary("dataset", cfg_.dataset);
    ctx.set_summary("test_accuracy", acc);
    ctx.set_summary("weights_ratio", static_cast<double>(totals_.raw) / static_cast<double>(totals_.bytes));
    ctx.set_summary("full_state_ratio", static_cast<double>(totals_.full_raw) / static_cast<double>(totals_.full_stored));
    ctx.set_summary("peak_ratio", totals_.peak_ratio);
    ctx.set_summary("search_evaluations", totals_.evaluations);
    // What compression costs the training loop: its waits (all of the compression when it does
    // not overlap) and, when it does, how much slower the steps taken beside it were than those
    // taken alone — measured within the run, as run-to-run noise on a shared host exceeds 1%.
    // compression_work_share is the compression's own time as a share had it not overlapped.
    const double alone_mean = totals_.steps_alone.count > 0 ? totals_.steps_alone.seconds / static_cast<double>(totals_.steps_alone.count) : 0.0;
    const double contention = totals_.steps_beside.seconds - static_cast<double>(totals_.steps_beside.count) * alone_mean;
    const double loop = totals_.train_s + totals_.stall_s;
    ctx.set_summary("compression_seconds", totals_.compress_s);
    ctx.set_summary("compression_stall_seconds", totals_.stall_s);
    ctx.set_summary("failure_wait_seconds", totals_.failure_wait_s);
    // Steps beside compression are timed against the mean step alone; the difference is noise
    // around zero when compression costs training nothing, so the raw value can be negative.
    ctx.set_summary("compression_contention_seconds", std::max(contention, 0.0));
    ctx.set_summary("compression_contention_seconds_raw", contention);
    ctx.set_summary("steps_beside_compression", totals_.steps_beside.count);
    ctx.set_summary("train_seconds", totals_.train_s);
    ctx.set_summary("compression_time_share", (totals_.stall_s + std::max(contention, 0.0)) / std::max(loop, 1e-9));
    ctx.set_summary("compression_work_share", totals_.compress_s / std::max(totals_.train_s + totals_.compress_s, 1e-9));
    ctx.set_summary("failures", static_cast<int64_t>(failures_->rows()));
    // The simulated failures wait for checkpoints in flight (failure_wait_seconds, outside the
    // time share); a real one would not, and would redo the steps since the last finished one.
    ctx.set_summary("real_failure_lost_steps", totals_.real_failure_lost_steps);
    ctx.set_summary("real_failure_lost_seconds", static_cast<double>(totals_.real_failure_lost_steps) * alone_mean);
    for (const auto& [drop, rows] : bins_record_) {  // checkpoints where every quantizer met the drop
      std::array<double, 4> sum{};
      for (const auto& r : rows)
        for (size_t k = 0; k < sum.size(); ++k) sum[k] += r[k];
      const auto n = static_cast<double>(rows.size());
      ctx.set_summary(fmt::format("mean_bins_ours_drop_{}", drop), sum[0] / n);
      ctx.set_summary(fmt::format("mean_bins_ours_protected_drop_{}", drop), sum[1] / n);
      ctx.set_summary(fmt::format("mean_bins_uniform_drop_{}", drop), sum[2] / n);
      ctx.set_summary(fmt::format("mean_bins_cnr_drop_{}", drop), sum[3] / n);
    }
  }

  Config cfg_;
  std::unique_ptr<cz::CheckpointCodec> codec_;
  data::Dataset train_, validation_, test_;
  std::unique_ptr<EvaluationNets> evaluation_;  // validation accuracy of any weights, thread-safe
  results::Table* checkpoints_ = nullptr;
  results::Table* failures_ = nullptr;
  results::Table* epochs_ = nullptr;
  results::Table* bins_ = nullptr;
  std::map<double, std::vector<std::array<int, 4>>> bins_record_;  // drop → (ours, ours protected, uniform, cnr) per checkpoint
  struct StepTimes {
    double seconds = 0.0;
    int64_t count = 0;
    void add(double s) { seconds += s, ++count; }
  };
  // The run's counters and clocks, declared once: a save writes them as one record.
  struct Totals {
    int64_t bytes = 0, raw = 0, full_stored = 0, full_raw = 0;  // weights, and weights + optimizer
    int64_t evaluations = 0;   // the searches' quality evaluations
    double peak_ratio = 0.0, compress_s = 0.0, train_s = 0.0;
    StepTimes steps_alone, steps_beside;  // training steps taken with no compression running, and beside one
    double stall_s = 0.0;         // the training loop's waits on compression
    double failure_wait_s = 0.0;  // a simulated failure's wait for the checkpoint in flight
    int64_t real_failure_lost_steps = 0;  // steps a real failure would redo: from the last finished checkpoint
    uint64_t next_failure = 0;    // index into the evenly spaced failure steps
    uint64_t iterations = 0;      // training steps run, counting those redone after a failure
  } totals_;
  static_assert(std::is_trivially_copyable_v<Totals>);
  cz::StoredCheckpoint saved_;  // the latest finished checkpoint: what a failure restores
  std::unique_ptr<cz::CheckpointPipeline> pipeline_;  // after the codec and the nets it uses: destroyed first
};

}  // namespace

std::unique_ptr<Experiment> make_dynaquant(const config::ConfigNode& job_config) {
  return std::make_unique<Dynaquant>(parse(job_config));
}

}  // namespace xp::experiments
