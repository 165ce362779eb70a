// The replica scheduling policies, one registry entry each: the `scheduler.type` that names it,
// what it does, and its factory (each policy lives in a file of its own). A new policy is its
// file, its line in policies.cpp, and configs/scheduler/<name>.yaml; configs, `exp list` and the
// scheduler factory find it here.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "serving/scheduler/replica_scheduler.h"

namespace xp::serving {

struct SchedulerPolicy {
  std::string type;         // scheduler.type
  std::string description;  // one line
  std::unique_ptr<ReplicaScheduler> (*make)(const SchedulerConfig& cfg, int64_t num_kv_blocks);
};

const std::vector<SchedulerPolicy>& scheduler_policies();
std::vector<std::string> scheduler_types();  // the policies' `type`s, in registry order

}  // namespace xp::serving
