// The discrete-event simulator (docs/serving_simulator.md): arrivals → global scheduler → replica
// schedulers (the shared ReplicaScheduler) → pipeline stages timed by the ExecutionPredictor.
// One binary heap of events keyed by (time, creation order), so same-time events resolve FIFO
// and every run is reproducible. Requests stream from the generator one at a time and leave
// through the metrics as they finish: memory is bounded by the live requests.
// Single-threaded; one Simulator per run.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "serving/metrics/collector.h"
#include "serving/scheduler/scheduler_config.h"
#include "serving/sim/predictor.h"
#include "serving/workload/workload.h"

namespace xp::serving {

struct ClusterConfig {
  int64_t num_replicas = 1;
  std::string global_scheduler = "round_robin";  // a name in global_scheduler.h's registry
  double time_limit_s = 0;                        // stop simulating after this much time (0 = none)
};

struct SimulationResult {
  int64_t requests_arrived = 0;
  int64_t requests_finished = 0;  // including ignored
  int64_t iterations = 0;
  int64_t preemptions = 0;
  double simulated_s = 0;
  bool stopped = false;           // by the time limit or `should_stop`
};

class Simulator {
 public:
  Simulator(const ClusterConfig& cluster, const SchedulerConfig& scheduler, const StageTimer& timer,
            int64_t kv_blocks_per_replica, int64_t gpus_per_replica, RequestGenerator& requests,
            ServingMetrics& metrics, uint64_t seed,
            std::shared_ptr<const IterationTimeModel> time_model = nullptr);
  ~Simulator();

  // Runs to completion (or until the time limit, or `should_stop` returns true between events).
  SimulationResult run(const std::function<bool()>& should_stop = {});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace xp::serving
