#include "experiments/config_search.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <optional>

#include "core/config/error.h"
#include "core/runtime/files.h"
#include "core/runtime/logging.h"
#include "core/runtime/thread_pool.h"
#include "experiments/serving_setup.h"
#include "experiments/slo.h"
#include "serving/scheduler/policies.h"

namespace xp::experiments {
namespace {

using namespace xp::serving;
using results::ColumnType;

struct SearchSpace {
  int64_t gpu_budget = 16;
  std::vector<int64_t> tensor_parallel = {1, 2, 4, 8};
  std::vector<int64_t> pipeline_parallel = {1, 2, 4};
  std::vector<bool> sequence_pipeline_parallel = {false};  // Mnemosyne's SPP (with PP > 1 only)
  std::vector<int64_t> kv_parallel = {1};                  // Mnemosyne's KVP (schedulers that can serve it)
  std::vector<int64_t> chunk_sizes = {256, 512, 1024, 2048, 4096};  // for schedulers that chunk prompts
  std::vector<int64_t> batch_caps = {32, 64, 128};                   // per micro-batch: × PP
  int64_t workers = 0;                                               // threads; 0 = all cores
};

// Layouts ordered for a map (TP, PP, SPP, KVP).
struct LayoutOrder {
  static auto key(const ReplicaLayout& l) {
    return std::make_tuple(l.tensor_parallel, l.pipeline_parallel, l.sequence_pipeline_parallel, l.kv_parallel);
  }
  bool operator()(const ReplicaLayout& a, const ReplicaLayout& b) const { return key(a) < key(b); }
};

struct Point {
  ReplicaLayout layout;
  int64_t replicas = 1;
  const SchedulerVariant* variant = nullptr;  // one of the config's `schedulers`
  std::string scheduler;                      // its name
  int64_t chunk = 0, cap = 0;
  // results
  double capacity = 0, qps_per_dollar = 0, p90_ttft = 0, p99_tbt = 0;
  int64_t probes = 0;
  bool pareto = false;
  std::string note;
  int64_t gpus() const { return layout.num_gpus() * replicas; }
  std::string label() const {
    return fmt::format("{} x{} {}{} cap{}", layout.label(), replicas, scheduler, chunk ? fmt::format("/{}", chunk) : "", cap);
  }
};

class ConfigSearch final : public Experiment {
 public:
  ConfigSearch(ServingSetup setup, CapacityPlan plan, SearchSpace space, bool plots)
      : setup_(std::move(setup)), plan_(plan), space_(std::move(space)), plots_(plots) {}

  jobs::RunOutcome run(jobs::RunContext& ctx) override {
    auto log = runtime::logger();
    std::map<ReplicaLayout, std::pair<ServingSetup, int64_t>, LayoutOrder> layouts;  // setup, kv blocks
    std::map<ReplicaLayout, std::string, LayoutOrder> invalid;
    std::vector<ReplicaLayout> space;
    for (int64_t tp : space_.tensor_parallel)
      for (int64_t pp : space_.pipeline_parallel)
        for (bool spp : space_.sequence_pipeline_parallel)
          for (int64_t kvp : space_.kv_parallel) {
            if (spp && pp == 1) continue;  // SPP pipelines stages
            ReplicaLayout l = setup_.layout;  // the deployment's margin and KVP group size
            l.tensor_parallel = tp;
            l.pipeline_parallel = pp;
            l.sequence_pipeline_parallel = spp;
            l.kv_parallel = kvp;
            space.push_back(l);
          }
    for (const ReplicaLayout& l : space) {
      std::string why;
      if (l.num_gpus() > space_.gpu_budget) why = fmt::format("{} needs more than {} GPUs", l.label(), space_.gpu_budget);
      else if (l.tensor_parallel > setup_.device.devices_per_node) why = fmt::format("TP{} exceeds a {}-GPU node", l.tensor_parallel, setup_.device.devices_per_node);
      else if (setup_.model.num_layers % l.pipeline_parallel) why = fmt::format("{} layers do not split into {} stages", setup_.model.num_layers, l.pipeline_parallel);
      if (!why.empty()) {
        invalid[l] = why;
        continue;
      }
      ServingSetup s = setup_;
      s.layout = l;
      s.cluster.num_replicas = space_.gpu_budget / l.num_gpus();
      s.cluster.global_scheduler = "round_robin";
      try {
        s.predictor = std::make_shared<ExecutionPredictor>(s.model, s.device, s.layout, s.data_dir);
      } catch (const std::runtime_error& e) {
        invalid[l] = e.what();
        continue;
      }
      int64_t blocks = s.kv_blocks(&why);
      if (blocks == 0) {
        invalid[l] = why;
        continue;
      }
      layouts.emplace(l, std::make_pair(std::move(s), blocks));
    }
    for (const ReplicaLayout& l : space)
      for (const SchedulerVariant& v : setup_.variants) {
        const SchedulerPolicy& policy = *find_scheduler_policy(v.scheduler.type);  // the config checked the type
        const std::vector<int64_t> chunks = policy.chunks_prompts ? space_.chunk_sizes : std::vector<int64_t>{0};
        for (int64_t chunk : chunks)
          for (int64_t cap : space_.batch_caps) {
            Point p;
            p.layout = l;
            p.replicas = space_.gpu_budget / l.num_gpus();
            p.variant = &v;
            p.scheduler = v.name;
            p.chunk = chunk;
            p.cap = cap;
            if (auto it = invalid.find(l); it != invalid.end()) p.note = it->second;
            else if (l.kv_parallel > 1 && !policy.kv_parallel)
              p.note = fmt::format("KV parallelism needs chunks stopped at group boundaries ({} does not stop them)", v.scheduler.type);
            points_.push_back(p);
          }
      }
    size_t runnable = static_cast<size_t>(std::count_if(points_.begin(), points_.end(), [](const Point& p) { return p.note.empty(); }));
    log->info("config search: {} points ({} runnable) for {} on up to {} x {}", points_.size(), runnable,
              setup_.model.name, space_.gpu_budget, setup_.device.name);

    runtime::ThreadPool pool(static_cast<size_t>(space_.workers));
    std::mutex log_mutex;
    size_t done = 0;
    pool.parallel_for(points_.size(), [&](size_t begin, size_t end) {
      for (size_t i = begin; i < end && !ctx.should_stop(); ++i) {
        Point& p = points_[i];
        if (!p.note.empty()) continue;
        const auto& [s, blocks] = layouts.at(p.layout);
        run_point(p, s, blocks, ctx.seed());
        std::lock_guard<std::mutex> lock(log_mutex);
        log->info("[{}/{}] {}: {:.2f} QPS", ++done, runnable, p.label(), p.capacity);
      }
    });
    if (ctx.should_stop()) return jobs::RunOutcome::kPreempted;  // a search restarts whole
    mark_pareto();
    write(ctx);
    return jobs::RunOutcome::kDone;
  }

  void report(const jobs::RunContext&) const override {
    std::vector<const Point*> ranked;
    for (const auto& p : points_)
      if (p.capacity > 0) ranked.push_back(&p);
    std::sort(ranked.begin(), ranked.end(), [](auto a, auto b) { return a->qps_per_dollar > b->qps_per_dollar; });
    fmt::print("config search: {} on {} GPUs of {}, SLO {}\n", setup_.model.name, space_.gpu_budget, setup_.device.name,
               plan_.slo.describe());
    fmt::print("  {:<44} {:>10} {:>12} {:>11} {:>10} {}\n", "configuration", "QPS", cost_label(), "P90 TTFT", "P99 TBT", "");
    for (size_t i = 0; i < std::min<size_t>(10, ranked.size()); ++i) {
      const Point& p = *ranked[i];
      fmt::print("  {:<44} {:>10.2f} {:>12.3f} {:>11.3f} {:>10.3f} {}\n", p.label(), p.capacity, p.qps_per_dollar, p.p90_ttft,
                 p.p99_tbt, p.pareto ? "pareto" : "");
    }
    if (ranked.empty()) fmt::print("  no configuration met the SLO\n");
  }

  void after_close(const std::filesystem::path& run_dir) const override {
    if (plots_) plot_serving_results(run_dir);
  }

 private:
  std::string cost_label() const { return setup_.device.cost_per_hour > 0 ? "QPS per $/h" : "QPS per GPU"; }

  void run_point(Point& p, const ServingSetup& s, int64_t blocks, uint64_t seed) const {
    SchedulerVariant v = *p.variant;  // its settings, the point's chunk, cap and layout
    if (p.chunk) v.scheduler.chunk_size = p.chunk;
    v.scheduler.max_num_seqs = p.cap * p.layout.pipeline_parallel;  // Vidur multiplies the cap by the pipeline depth
    v.scheduler.max_model_len = s.model.max_model_len;
    v.scheduler.pipeline_stages = p.layout.pipeline_parallel;
    v.scheduler.sequence_pipeline_parallel = p.layout.sequence_pipeline_parallel;
    v.scheduler.kv_parallel = p.layout.kv_parallel;
    v.scheduler.max_tokens_per_kvp_group = p.layout.max_tokens_per_kvp_group;
    MetricsConfig mc = plan_.slo.probe_metrics(s.metrics);
    CapacityPlan plan = plan_;
    plan.search.start_qps = plan_.search.start_qps * static_cast<double>(p.replicas);
    ServingSummary at_capacity;
    std::optional<double> best;
    CapacityResult r = plan.run([&](double qps) {
      WorkloadConfig w = s.workload;
      w.qps = qps;
      w.arrivals = "poisson";
      SimulationOutput out = simulate(s, v, w, mc, nullptr, "", blocks, seed);
      bool ok = plan_.slo.passes(out.summary);
      if (ok && (!best || qps > *best)) {
        best = qps;
        at_capacity = out.summary;
      }
      return ProbeResult{ok, out.summary.get("p50_scheduling_delay_s")};
    });
    p.probes = static_cast<int64_t>(r.probes.size());
    p.capacity = r.best_qps.value_or(0.0);
    double price = s.device.cost_per_hour > 0 ? s.device.cost_per_hour : 1.0;
    p.qps_per_dollar = p.capacity / (static_cast<double>(p.gpus()) * price);
    if (r.best_qps) {
      p.p90_ttft = at_capacity.get("p90_ttft_s");
      p.p99_tbt = at_capacity.get("p99_tbt_s");
    } else {
      p.note = "no probed QPS met the SLO";
    }
  }

  // Pareto frontier over (QPS per dollar ↑, P99 TBT at capacity ↓).
  void mark_pareto() {
    for (auto& a : points_) {
      if (a.capacity <= 0) continue;
      a.pareto = std::none_of(points_.begin(), points_.end(), [&](const Point& b) {
        return b.capacity > 0 && b.qps_per_dollar >= a.qps_per_dollar && b.p99_tbt <= a.p99_tbt &&
               (b.qps_per_dollar > a.qps_per_dollar || b.p99_tbt < a.p99_tbt);
      });
    }
  }

  void write(jobs::RunContext& ctx) {
    auto& t = ctx.table("/search/points", {
        {"tensor_parallel", ColumnType::kUInt32, "", "TP degree"},
        {"pipeline_parallel", ColumnType::kUInt32, "", "PP degree"},
        {"sequence_pipeline_parallel", ColumnType::kUInt8, "", "1 = Mnemosyne's SPP"},
        {"kv_parallel", ColumnType::kUInt32, "", "KVP degree (Mnemosyne)"},
        {"replicas", ColumnType::kUInt32, "", "replicas in the GPU budget"},
        {"gpus", ColumnType::kUInt32, "", "GPUs used"},
        {"scheduler_index", ColumnType::kUInt32, "", "index into the `schedulers` attribute"},
        {"chunk_size", ColumnType::kUInt32, "tokens", "Sarathi-Serve token budget (0 for vLLM)"},
        {"batch_cap", ColumnType::kUInt32, "", "batch-size cap per micro-batch"},
        {"capacity_qps", ColumnType::kFloat64, "requests/s", "largest QPS under the SLO (0: none, or invalid)"},
        {"qps_per_dollar", ColumnType::kFloat64, "", "capacity / (GPUs × $ per GPU-hour), or per GPU when no price"},
        {"p90_ttft_s", ColumnType::kFloat64, "s", "P90 TTFT at capacity"},
        {"p99_tbt_s", ColumnType::kFloat64, "s", "P99 TBT at capacity"},
        {"probes", ColumnType::kUInt32, "", "simulations run"},
        {"pareto", ColumnType::kUInt8, "", "1 = on the QPS-per-dollar / P99 TBT frontier"},
    });
    std::vector<std::string> names;
    for (const auto& v : setup_.variants) names.push_back(v.name);
    ctx.results().set_attr("/search/points", "schedulers", names);
    ctx.results().set_attr("/search/points", "slo", plan_.slo.describe());
    std::string csv = "tensor_parallel,pipeline_parallel,sequence_pipeline_parallel,kv_parallel,replicas,gpus,scheduler,"
                      "chunk_size,batch_cap,capacity_qps,qps_per_dollar,p90_ttft_s,p99_tbt_s,probes,pareto,note\n";
    const Point* best = nullptr;
    for (const auto& p : points_) {
      const auto si = static_cast<int64_t>(p.variant - setup_.variants.data());
      const ReplicaLayout& l = p.layout;
      t.append({l.tensor_parallel, l.pipeline_parallel, int64_t{l.sequence_pipeline_parallel ? 1 : 0}, l.kv_parallel, p.replicas, p.gpus(), si, p.chunk, p.cap, p.capacity,
                p.qps_per_dollar, p.p90_ttft, p.p99_tbt, p.probes, int64_t{p.pareto ? 1 : 0}});
      std::string note = p.note;
      std::replace(note.begin(), note.end(), ',', ';');
      csv += fmt::format("{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n", l.tensor_parallel, l.pipeline_parallel,
                         l.sequence_pipeline_parallel ? 1 : 0, l.kv_parallel, p.replicas,
                         p.gpus(), p.scheduler, p.chunk, p.cap, p.capacity, p.qps_per_dollar, p.p90_ttft, p.p99_tbt, p.probes,
                         p.pareto ? 1 : 0, note);
      if (p.capacity > 0 && (!best || p.qps_per_dollar > best->qps_per_dollar)) best = &p;
    }
    runtime::write_file_atomic(ctx.output_dir() / "search.csv", csv);
    ctx.set_summary("points", static_cast<int64_t>(points_.size()));
    ctx.set_summary("pareto_points", static_cast<int64_t>(std::count_if(points_.begin(), points_.end(), [](const Point& p) { return p.pareto; })));
    if (best) {
      ctx.set_summary("best_configuration", best->label());
      ctx.set_summary("best_capacity_qps", best->capacity);
      ctx.set_summary("best_qps_per_dollar", best->qps_per_dollar);
    }
  }

  ServingSetup setup_;
  CapacityPlan plan_;
  SearchSpace space_;
  bool plots_;
  std::vector<Point> points_;
};

}  // namespace

std::unique_ptr<Experiment> make_config_search(const config::ConfigNode& job_config) {
  auto top = top_level_reader(job_config);
  ServingSetup setup = ServingSetup::parse(top);
  CapacityPlan plan = CapacityPlan::from(top.section("capacity"));
  SearchSpace space;
  auto s = top.section("search");
  s.get("gpu_budget", space.gpu_budget, Range::at_least(1));
  s.get("tensor_parallel", space.tensor_parallel, Range::at_least(1));
  s.get("pipeline_parallel", space.pipeline_parallel, Range::at_least(1));
  s.get("sequence_pipeline_parallel", space.sequence_pipeline_parallel);
  s.get("kv_parallel", space.kv_parallel, Range::between(1, 1024));
  s.get("chunk_sizes", space.chunk_sizes, Range::at_least(1));
  s.get("batch_caps", space.batch_caps, Range::at_least(1));
  s.get("workers", space.workers, Range::between(0, 4096));
  for (int64_t tp : space.tensor_parallel) check_tensor_parallel(setup.model, tp, s, "tensor_parallel");
  s.finish();
  if (space.gpu_budget < 1) throw config::ConfigError("must be >= 1", {}, "search.gpu_budget", "set search.gpu_budget=8");
  bool plots = false;
  top.get("plots", plots);
  top.finish();
  return std::make_unique<ConfigSearch>(std::move(setup), plan, std::move(space), plots);
}

}  // namespace xp::experiments
