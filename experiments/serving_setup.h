// What serving_sim and capacity_search share: the model/hardware/deployment/scheduler/workload/
// metrics sections of a config, the predictor built from them (profiles are loaded, and every
// file problem reported, before a run writes anything), and one simulation.
#pragma once
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/config/reader.h"
#include "core/jobs/run_context.h"
#include "serving/metrics/collector.h"
#include "serving/sim/simulator.h"

namespace xp::experiments {

// A ConfigError at `key` of `r` unless `tp` ranks can split the model's heads (query heads
// evenly; KV heads evenly, or replicated when there are fewer than ranks); it lists the TPs that can.
void check_tensor_parallel(const serving::ModelSpec& m, int64_t tp, const config::ConfigReader& r, const std::string& key);

// Lays the scheduler over `layout`'s pipeline stages (sequence-pipelined or not) and KV-parallel
// groups; a ConfigError (at `deployment`'s keys) for SPP without stages, or KVP where the scheduler
// cannot chunk prompts at group boundaries or the groups are not whole blocks.
void set_layout(serving::SchedulerConfig& s, const serving::ReplicaLayout& layout, const config::ConfigReader& deployment,
                const std::string& scheduler_key);

struct SchedulerVariant {
  std::string name;
  serving::SchedulerConfig scheduler;
};

struct ServingSetup {
  std::filesystem::path data_dir;
  serving::ModelSpec model;
  serving::DeviceSpec device;
  serving::ReplicaLayout layout;
  serving::ClusterConfig cluster;
  std::vector<SchedulerVariant> variants;  // `schedulers: {name: {...}}`, or the one `scheduler:`
  serving::WorkloadConfig workload;
  serving::MetricsConfig metrics;
  std::shared_ptr<serving::ExecutionPredictor> predictor;

  // Reads the shared sections from `top` (leaving other keys to the caller) and loads the
  // profiles; ConfigError on anything wrong.
  static ServingSetup parse(const config::ConfigReader& top);

  // KV blocks per replica; 0 with `why` set when the model does not fit.
  int64_t kv_blocks(std::string* why) const;
  int64_t total_gpus() const { return cluster.num_replicas * layout.num_gpus(); }
  // Predicted TTFT of a lone prompt of `tokens` (all stages): the deadline SLO's prefill predictor.
  double lone_prefill_s(int64_t tokens) const;
};

struct SimulationOutput {
  serving::SimulationResult result;
  serving::ServingSummary summary;
  double wall_s = 0;
};

// One simulation of `variant` under `workload`; tables go to `group` in ctx's results (ctx may
// be null for probes whose tables are not kept).
SimulationOutput simulate(const ServingSetup& setup, const SchedulerVariant& variant,
                          const serving::WorkloadConfig& workload, const serving::MetricsConfig& metrics,
                          jobs::RunContext* ctx, const std::string& group, int64_t kv_blocks, uint64_t seed);

// Runs scripts/plot_serving.py on a finished run (PNGs beside results.h5); a failure is logged.
void plot_serving_results(const std::filesystem::path& run_dir);

}  // namespace xp::experiments
