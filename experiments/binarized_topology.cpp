#include "experiments/binarized_topology.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>

#include "core/config/error.h"
#include "core/nn/norm.h"
#include "core/runtime/progress.h"
#include "networks/topology.h"
#include "networks/trainer.h"

namespace xp::experiments {
namespace {

using networks::Network;
using networks::NetworkSpec;
using networks::TrainOptions;

// The measurements (active weights, invert parameters, the sparse topology and its sweeps) read
// the weights on the host: a model training on the GPU visits the host for them and goes back.
class OnHost {
 public:
  explicit OnHost(Network& net) : net_(net), device_(net.device()) {
    if (device_ != tensor::Device::kCPU) net_.module().to(tensor::Device::kCPU);
  }
  ~OnHost() {
    if (device_ != tensor::Device::kCPU) net_.module().to(device_);
  }
  OnHost(const OnHost&) = delete;
  OnHost& operator=(const OnHost&) = delete;

 private:
  Network& net_;
  const tensor::Device device_;
};

struct DataConfig {
  std::string dataset = "fashion_mnist";  // fashion_mnist | digits
  std::string path;                       // "" = where Debian installs it
  bool binarize = true;                   // pixel ≥ 0.5 → 1, else 0 (the method's input)
  int64_t train_subset = 0;               // > 0: train on the first N of a seeded shuffle (quick runs)
  int64_t digits_test = 497;              // digits only: samples held out for testing
};

struct EvalConfig {
  int64_t sweep_every = 10;  // epochs between constant-weight sweeps (0 = only after training)
  double on_min = 0.0;       // the sweep's constant weights: on_min, on_min + on_step, ..., on_max
  double on_max = 4.0;
  double on_step = 0.1;
};

struct Config {
  DataConfig data;
  NetworkSpec network;
  std::string init_from;  // a saved final_model.bin to start from ("" = the seeded initialisation)
  TrainOptions train;
  int64_t checkpoint_every = 200;  // steps between checkpoints (also at every epoch end)
  EvalConfig eval;
};

Config parse(const config::ConfigNode& job) {
  Config c;
  auto top = top_level_reader(job);
  auto d = top.section("data");
  d.get_enum("dataset", c.data.dataset, {"fashion_mnist", "digits"});
  d.get("path", c.data.path);
  d.get("binarize", c.data.binarize);
  d.get("train_subset", c.data.train_subset, Range::non_negative());
  d.get("digits_test", c.data.digits_test, Range::at_least(1));
  d.finish();
  auto n = top.section("network");
  n.get("layers", c.network.layers, Range::at_least(1));
  n.get_enum("method", c.network.method, {"binarized", "float_mlp", "edge_popup"});
  n.get_enum("norm", c.network.norm, {"hard_invert", "soft_invert", "batch_norm", "neg_batch_norm"});
  n.get("on", c.network.on, Range::positive());
  n.get("init_p", c.network.init_p, Range::fraction());
  n.get("soft_invert_init", c.network.soft_invert_init, Range::any());
  n.get("bn_eps", c.network.bn_eps, Range::positive());
  n.get("bn_momentum", c.network.bn_momentum, Range::fraction());
  n.get("keep", c.network.keep, Range::between(0, 1).open_below());
  n.get("init_from", c.init_from);
  n.finish();
  auto t = top.section("train");
  t.get("epochs", c.train.epochs, Range::non_negative());
  t.get("batch_size", c.train.batch_size, Range::at_least(1));
  t.get_enum("optimizer", c.train.optimizer, networks::optimizer_names());
  t.get("lr", c.train.lr, Range::positive());
  t.get("momentum", c.train.momentum, Range::between(0, 1).open_above());
  t.get("weight_decay", c.train.weight_decay, Range::non_negative());
  t.get_enum("schedule", c.train.schedule, {"constant", "cosine"});
  t.get_enum("device", c.train.device, {"cpu", "cuda"});
  t.get("checkpoint_every", c.checkpoint_every, Range::non_negative());
  t.get("logical_ranks", c.train.logical_ranks, Range::between(1, 1024));
  t.get("workers", c.train.workers, Range::between(0, 1024));
  t.get("collective_timeout_s", c.train.collective_timeout_s, Range::between(0.1, 86400));
  t.finish();
  auto e = top.section("eval");
  e.get("sweep_every", c.eval.sweep_every, Range::non_negative());
  e.get("on_min", c.eval.on_min, Range::any());
  e.get("on_max", c.eval.on_max, Range::any());
  e.get("on_step", c.eval.on_step, Range::positive());
  e.finish();
  top.finish();
  if (c.train.epochs < 1 && c.init_from.empty())
    reject_key(job, "train.epochs", "must be at least 1 (0 only re-analyses a saved net)",
               "set train.epochs=<1 or more>, or network.init_from=<run dir>/final_model.bin");
  if (c.train.batch_size < 1) reject_key(job, "train.batch_size", "must be positive", "set train.batch_size=200");
  if (c.train.device == "cuda" && c.network.method == "edge_popup")
    reject_key(job, "train.device", "edge_popup trains on the CPU only (its top-k layer has no CUDA version)",
               "set train.device=cpu");
  if (c.network.layers.size() < 2)
    reject_key(job, "network.layers", "needs an input size and an output size", "e.g. network.layers=[784,1024,1024,10]");
  for (int64_t s : c.network.layers)
    if (s <= 0) reject_key(job, "network.layers", fmt::format("layer sizes must be positive, got {}", s), "");
  if (!(c.network.init_p >= 0 && c.network.init_p <= 1))
    reject_key(job, "network.init_p", "must be a probability", "the notebook uses 0.001");
  if (!(c.network.keep > 0 && c.network.keep <= 1))
    reject_key(job, "network.keep", "is the fraction of weights kept and must be in (0, 1]", "e.g. network.keep=0.1");
  if (!(c.eval.on_step > 0) || c.eval.on_max < c.eval.on_min)
    reject_key(job, "eval.on_step", "the sweep needs on_step > 0 and on_max ≥ on_min", "the spec sweeps 0 to 4 in steps of 0.1");
  const int64_t in = c.data.dataset == "digits" ? 64 : 784;
  if (c.network.layers.front() != in || c.network.layers.back() != 10)
    reject_key(job, "network.layers",
        fmt::format("the first size must be the {} input size {} and the last the 10 classes", c.data.dataset, in),
        fmt::format("e.g. network.layers=[{},1024,1024,10]", in));
  return c;
}

struct Splits {
  data::Dataset train, test;
};

Splits load_data(const DataConfig& c, uint64_t seed) {
  Splits s;
  if (c.dataset == "digits") {
    data::Dataset all = data::load_digits(c.path.empty() ? data::default_digits_path() : std::filesystem::path(c.path));
    auto [test, train] = data::split(all, c.digits_test, runtime::RngStream(seed, 1));
    s.train = std::move(train);
    s.test = std::move(test);
  } else {
    auto dir = c.path.empty() ? data::default_fashion_mnist_dir() : std::filesystem::path(c.path);
    s.train = data::load_fashion_mnist(dir, "train");
    s.test = data::load_fashion_mnist(dir, "test");
  }
  if (c.train_subset > 0 && c.train_subset < s.train.size())
    s.train = data::sample(s.train, c.train_subset, runtime::RngStream(seed, 2));
  if (c.binarize) {
    data::binarize(s.train);
    data::binarize(s.test);
  }
  return s;
}

// Sums over the current epoch's mini-batches so far (loss is a per-batch mean, summed).
struct EpochTally {
  double loss_sum = 0.0;
  int64_t correct = 0, seen = 0;
};

class BinarizedTopology final : public Experiment {
 public:
  explicit BinarizedTopology(Config c) : cfg_(std::move(c)) {}
  // Under mpirun/srun every process trains its share of the logical ranks (train.logical_ranks).
  bool runs_as_spmd() const override { return true; }

  jobs::RunOutcome run(jobs::RunContext& ctx) override {
    Splits data = load_data(cfg_.data, ctx.seed());
    Network net(cfg_.network, ctx.seed());
    if (!cfg_.init_from.empty()) networks::load_model(net, cfg_.init_from);
    networks::Trainer trainer(net, cfg_.train, ctx.seed(), ctx.processes());
    double train_seconds = 0.0;
    EpochTally tally;  // the current epoch's running figures: a mid-epoch checkpoint carries them
    if (auto payload = ctx.restore()) {
      jobs::ByteReader r(*payload);
      train_seconds = r.get<double>();
      tally = {r.get<double>(), r.get<int64_t>(), r.get<int64_t>()};
      trainer.load(nn::read_state_dict(r));
      ctx.log().info("resumed at epoch {} batch {}", trainer.epoch(), trainer.batch());
    }
    open_tables(ctx);
    const bool binarized = cfg_.network.method == "binarized";
    const int64_t per_epoch = trainer.batches_per_epoch(data.train);
    runtime::Progress progress("train", cfg_.train.epochs * per_epoch);
    progress.set(trainer.epoch() * per_epoch + trainer.batch());
    int64_t since_checkpoint = 0;
    while (!trainer.done()) {
      const auto t0 = std::chrono::steady_clock::now();
      networks::StepResult s = trainer.step(data.train, ctx.should_stop());
      train_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      tally.loss_sum += s.loss;
      tally.correct += s.correct;
      tally.seen += s.samples;
      progress.advance();
      ++since_checkpoint;
      // The measurements go to tables only the writing process keeps: the others skip them.
      if (trainer.batch() == 0 && ctx.writes()) {
        end_of_epoch(ctx, net, data, trainer.epoch(), tally.loss_sum / static_cast<double>(tally.seen),
                     static_cast<double>(tally.correct) / static_cast<double>(tally.seen), train_seconds);
        if (binarized && cfg_.eval.sweep_every > 0 && trainer.epoch() % cfg_.eval.sweep_every == 0 && !trainer.done())
          sweep(net, data.test, trainer.epoch());
      }
      if (trainer.batch() == 0) tally = {};
      if (s.stop && !trainer.done()) {  // every process stops after this same step
        save(ctx, trainer, train_seconds, tally);
        ctx.log().info("stop requested: checkpoint saved at epoch {} batch {}", trainer.epoch(), trainer.batch());
        return jobs::RunOutcome::kPreempted;
      }
      if (!trainer.done() && (trainer.batch() == 0 || (cfg_.checkpoint_every > 0 && since_checkpoint >= cfg_.checkpoint_every))) {
        save(ctx, trainer, train_seconds, tally);
        since_checkpoint = 0;
      }
    }
    progress.finish();
    // A fingerprint of the final weights and optimizer state: equal fingerprints mean a resumed
    // run ended bit for bit where an uninterrupted one did.
    ctx.set_summary("final_state_xxh3", nn::fingerprint(trainer.state()));
    if (ctx.writes()) finish(ctx, net, data, train_seconds);
    return jobs::RunOutcome::kDone;
  }

 private:
  void open_tables(jobs::RunContext& ctx) {
    using results::ColumnType;
    epochs_ = &ctx.table("/train/epochs", {
        {"epoch", ColumnType::kInt64, "epochs", "epochs completed"},
        {"train_loss", ColumnType::kFloat64, "", "mean NLL over the epoch's mini-batches"},
        {"train_accuracy", ColumnType::kFloat64, "", "accuracy on the epoch's mini-batches (training mode)"},
        {"test_accuracy", ColumnType::kFloat64, "", "test accuracy (binarized nets: at on = 1)"},
        {"active_share", ColumnType::kFloat64, "", "share of all weights that are active"},
        {"train_seconds", ColumnType::kFloat64, "s", "training time so far (optimizer steps only)"},
    });
    layers_ = &ctx.table("/train/layers", {
        {"epoch", ColumnType::kInt64, "epochs", "epochs completed"},
        {"layer", ColumnType::kInt64, "", "weight layer, 1-based"},
        {"active", ColumnType::kInt64, "weights", "active weights (binarized: |w| ≥ 0.5; edge-popup: kept)"},
        {"total", ColumnType::kInt64, "weights", "weights in the layer"},
        {"invert", ColumnType::kFloat64, "", "soft_invert: learned a; batch_norm: share of units with γ < 0; hard_invert: 1"},
    });
    sweep_ = &ctx.table("/sweep", {
        {"epoch", ColumnType::kInt64, "epochs", "epochs completed when swept"},
        {"on", ColumnType::kFloat64, "", "the constant weight every active connection gets"},
        {"test_accuracy", ColumnType::kFloat64, "", "test accuracy with that constant"},
    });
  }

  static double invert_measure(nn::Module* norm) {
    if (auto* s = dynamic_cast<nn::SoftInvert*>(norm)) return s->effective_a();
    if (auto* bn = dynamic_cast<nn::BatchNorm*>(norm)) {
      const nn::Tensor& g = bn->weight()->value;
      int64_t negative = 0;
      for (int64_t i = 0; i < g.numel(); ++i) negative += g.data<float>()[i] < 0.0f;
      return static_cast<double>(negative) / static_cast<double>(g.numel());
    }
    return dynamic_cast<nn::HardInvert*>(norm) ? 1.0 : std::nan("");
  }

  void end_of_epoch(jobs::RunContext& ctx, Network& net, const Splits& data, int64_t epoch, double loss,
                    double train_acc, double seconds) {
    OnHost host(net);
    const double test_acc = networks::evaluate(net, data.test).accuracy;
    int64_t active = 0, total = 0;
    auto activity = net.weight_activity();
    for (size_t l = 0; l < activity.size(); ++l) {
      active += activity[l].active;
      total += activity[l].total;
      double invert = l < net.norms().size() ? invert_measure(net.norms()[l]) : std::nan("");
      layers_->append({epoch, static_cast<int64_t>(l + 1), activity[l].active, activity[l].total, invert});
    }
    const double share = static_cast<double>(active) / static_cast<double>(total);
    epochs_->append({epoch, loss, train_acc, test_acc, share, seconds});
    ctx.log().info("epoch {}: loss {:.4f}, train {:.4f}, test {:.4f}, active {:.3f}%", epoch, loss, train_acc, test_acc,
                   100.0 * share);
  }

  // The weight-invariance sweep on the sparse topology (cost ∝ active connections).
  std::vector<std::pair<double, double>> sweep(Network& net, const data::Dataset& test, int64_t epoch) {
    OnHost host(net);
    networks::Topology topo(net);
    std::vector<std::pair<double, double>> points;
    const auto steps = static_cast<int64_t>(std::floor((cfg_.eval.on_max - cfg_.eval.on_min) / cfg_.eval.on_step + 1e-9));
    for (int64_t i = 0; i <= steps; ++i) {
      const double on = cfg_.eval.on_min + static_cast<double>(i) * cfg_.eval.on_step;
      const double acc = networks::accuracy(topo.predict(test, static_cast<float>(on)), test);
      sweep_->append({epoch, on, acc});
      points.emplace_back(on, acc);
    }
    return points;
  }

  void finish(jobs::RunContext& ctx, Network& net, const Splits& data, double train_seconds) {
    OnHost host(net);
    networks::Evaluation e = networks::evaluate(net, data.test);
    int64_t active = 0, total = 0;
    for (const auto& l : net.weight_activity()) active += l.active, total += l.total;
    ctx.set_summary("method", cfg_.network.method);
    ctx.set_summary("dataset", cfg_.data.dataset);
    ctx.set_summary("binarized_input", cfg_.data.binarize);
    ctx.set_summary("test_accuracy", e.accuracy);
    ctx.set_summary("active_share", static_cast<double>(active) / static_cast<double>(total));
    ctx.set_summary("active_weights", active);
    ctx.set_summary("total_weights", total);
    ctx.set_summary("train_seconds", train_seconds);
    ctx.set_summary("train_samples_per_s",
                    static_cast<double>(cfg_.train.epochs * data.train.size()) / std::max(train_seconds, 1e-9));
    networks::save_model(net, ctx.output_dir() / "final_model.bin");
    if (cfg_.network.method != "binarized") {
      write_predictions(ctx, data.test, e.predictions, nullptr);
      return;
    }

    auto points = sweep(net, data.test, cfg_.train.epochs);
    // Weight invariance: the band of constants around the trained one whose accuracy stays within
    // 2 points below it (better is inside).
    networks::Topology topo(net);
    const double trained_on = topo.on();
    const double at_trained = networks::accuracy(topo.predict(data.test, topo.on()), data.test);
    const networks::WeightBand band = networks::flat_band(points, trained_on, at_trained, 0.02, cfg_.eval.on_step);
    ctx.set_summary("flat_on_min", band.lo);
    ctx.set_summary("flat_on_max", band.hi);

    // The Boolean circuit at network level: ties broken class-symmetrically (expected accuracy
    // under a random tie-break), the share of tied samples and the ceiling if every tie were won.
    auto circuit = topo.predict_circuit(data.test);
    ctx.set_summary("circuit_accuracy", networks::circuit_accuracy_random_ties(circuit, data.test));
    ctx.set_summary("circuit_accuracy_ceiling", networks::circuit_accuracy_ceiling(circuit, data.test));
    ctx.set_summary("circuit_tie_share", networks::tie_share(circuit));
    ctx.set_summary("circuit_agreement_up_to_ties", networks::agreement_up_to_ties(circuit, e.predictions));
    write_predictions(ctx, data.test, e.predictions, &circuit);

    using results::ColumnType;
    results::Table& nor = ctx.table("/nor", {
        {"layer", ColumnType::kInt64, "", "weight layer, 1-based (the last is the output layer)"},
        {"units", ColumnType::kInt64, "", "units with at least one active input"},
        {"counted", ColumnType::kInt64, "", "of those: output varies over the test set and reaches an output"},
        {"agreement", ColumnType::kFloat64, "", "P(output > 0.5 == NOR(inputs ≥ 0.5)) pooled over counted units × samples"},
        {"share_at_99", ColumnType::kFloat64, "", "share of counted units agreeing on ≥ 99% of test samples"},
        {"nor_but_low", ColumnType::kInt64, "unit·samples", "disagreements with NOR = 1 and output ≤ 0.5"},
        {"not_nor_but_high", ColumnType::kInt64, "unit·samples", "disagreements with NOR = 0 and output > 0.5"},
        {"mean_over_all", ColumnType::kFloat64, "", "mean agreement over every unit with an input (inflatable)"},
        {"inverting_units", ColumnType::kInt64, "", "units whose folded norm inverts (α < 0)"},
    });
    auto reports = topo.nor_agreement(data.test);
    for (size_t l = 0; l < reports.size(); ++l) {
      const auto& r = reports[l];
      nor.append({static_cast<int64_t>(l + 1), r.units, r.counted, r.agreement, r.share_at_99, r.nor_but_low,
                  r.not_nor_but_high, r.mean_over_all, r.inverting});
    }
    const networks::NorCriterion criterion = networks::nor_criterion(reports);
    ctx.set_summary("nor_criterion_met", criterion.met);
    ctx.set_summary("nor_agreement_min", criterion.min_agreement);
    ctx.set_summary("nor_share_at_99_min", criterion.min_share_at_99);
    if (auto* s = dynamic_cast<nn::SoftInvert*>(net.norms().front())) ctx.set_summary("soft_invert_a_layer1", s->effective_a());

    // Sparse vs dense evaluation time at on = 1 over the test set.
    auto time = [](auto f) {
      const auto t0 = std::chrono::steady_clock::now();
      f();
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    };
    ctx.set_summary("dense_eval_seconds", time([&] { networks::evaluate(net, data.test); }));
    ctx.set_summary("sparse_eval_seconds", time([&] { topo.predict(data.test, topo.on()); }));
  }

  // Per test sample: its label, the float net's prediction and (binarized) the circuit's tied
  // best classes, so a reported net's figures can be recomputed from the results file alone.
  static void write_predictions(jobs::RunContext& ctx, const data::Dataset& test, const std::vector<int32_t>& predicted,
                                const networks::Topology::CircuitPredictions* circuit) {
    using results::ColumnType;
    std::vector<results::ColumnSpec> columns{
        {"sample", ColumnType::kInt64, "", "index in the test set"},
        {"label", ColumnType::kInt32, "", "true class"},
        {"predicted", ColumnType::kInt32, "", "the float net's class"},
    };
    if (circuit) columns.push_back({"circuit_tied", ColumnType::kUInt64, "", "the circuit's best classes (bit c = class c)"});
    results::Table& t = ctx.table("/predictions", columns);
    for (int64_t i = 0; i < test.size(); ++i) {
      const auto k = static_cast<size_t>(i);
      const auto label = static_cast<int64_t>(test.labels[k]), guess = static_cast<int64_t>(predicted[k]);
      if (circuit) t.append({i, label, guess, circuit->tied[k]});
      else t.append({i, label, guess});
    }
  }

  static void save(jobs::RunContext& ctx, networks::Trainer& trainer, double train_seconds, const EpochTally& tally) {
    jobs::ByteWriter out;
    out.put<double>(train_seconds);
    out.put<double>(tally.loss_sum);
    out.put<int64_t>(tally.correct);
    out.put<int64_t>(tally.seen);
    nn::write_state_dict(out, trainer.state());
    ctx.save_checkpoint(static_cast<uint64_t>(trainer.epoch() * 1000000 + trainer.batch()), out);
  }

  Config cfg_;
  results::Table* epochs_ = nullptr;
  results::Table* layers_ = nullptr;
  results::Table* sweep_ = nullptr;
};

}  // namespace

std::unique_ptr<Experiment> make_binarized_topology(const config::ConfigNode& job_config) {
  return std::make_unique<BinarizedTopology>(parse(job_config));
}

}  // namespace xp::experiments
