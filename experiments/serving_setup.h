// What serving_sim and capacity_search share: the model/hardware/deployment/scheduler/workload/
// metrics sections of a config, the predictor built from them (profiles are loaded, and every
// file problem reported, before a run writes anything), and one simulation; and what the
// engine's experiments share: their deployment section.
#pragma once
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/config/reader.h"
#include "core/jobs/run_context.h"
#include "serving/engine/engine.h"
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

// deployment: how the engine lays a model over ranks, TP × KVP × pipeline stages of them (rank =
// stage · TP · KVP + kvp · TP + tp): threads of this process, or the ranks of an mpirun/srun
// launch (which must number the same).
struct EngineDeployment {
  int64_t tensor_parallel = 1;
  int64_t pipeline_parallel = 1;                   // stages, each a group of TP × KVP ranks
  bool sequence_pipeline_parallel = false;         // Mnemosyne's SPP: a prompt's next chunk follows its last out of stage 0
  int64_t kv_parallel = 1;                         // Mnemosyne's KVP: groups holding slices of each sequence's KV
  int64_t max_num_tokens_per_kvp_group = 1 << 20;  // the slice
  double collective_timeout_s = 60;
  serving::RankLayout layout() const { return {tensor_parallel, kv_parallel, pipeline_parallel}; }
  serving::ReplicaLayout replica_layout() const;  // the simulator's view of it
  int ranks() const { return static_cast<int>(layout().ranks()); }

  // Reads `d` (and finishes it) and lays `sched` over the layout (set_layout).
  static EngineDeployment read(config::ConfigReader d, serving::SchedulerConfig& sched, const std::string& scheduler_key);
  // A ConfigError at deployment's keys where `c` (read from `config_json`) does not split so.
  void check(const serving::LlamaConfig& c, const std::filesystem::path& config_json) const;
};

// OpenMP threads for each of `ranks` sharing this machine's cores (unless OMP_NUM_THREADS says).
int threads_per_rank(int ranks);

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
