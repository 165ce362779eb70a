// The cluster's global schedulers, one registry entry each: the `deployment.global_scheduler`
// that names it, what it does, and its factory. Each routes every arrival to one replica, as
// Vidur's global schedulers do (docs/serving_simulator.md). A new rule is a class and its entry
// in global_scheduler.cpp; configs, `exp list` and the simulator find it here.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "serving/scheduler/replica_scheduler.h"

namespace xp::serving {

class GlobalScheduler {
 public:
  virtual ~GlobalScheduler() = default;
  // The index of the replica (in `replicas`, never empty) that the next arrival goes to.
  virtual int64_t route(std::span<const ReplicaScheduler* const> replicas) = 0;
};

struct GlobalSchedulerType {
  std::string name;         // deployment.global_scheduler
  std::string description;  // one line
  std::unique_ptr<GlobalScheduler> (*make)(uint64_t seed);  // seed: the run's, for random choices
};

const std::vector<GlobalSchedulerType>& global_scheduler_types();
std::vector<std::string> global_scheduler_names();  // in registry order
// Throws std::invalid_argument for a name not registered.
std::unique_ptr<GlobalScheduler> make_global_scheduler(const std::string& name, uint64_t seed);

}  // namespace xp::serving
