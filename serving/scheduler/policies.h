// The replica scheduling policies, one registry entry each: the `scheduler.type` that names it,
// what it does, and its factory (each policy lives in a file of its own). A new policy is its
// file, its line in policies.cpp, and configs/scheduler/<name>.yaml — or, from code outside this
// tree (a plugin, a test), its file calling register_scheduler_policy. Configs, `exp list`, the
// scheduler factory and the config search find it here.
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
  bool chunks_prompts = false;  // splits prompts under `chunk_size` (a config search sweeps it)
  bool kv_parallel = false;     // stops chunks at KV-parallel group boundaries (can serve under KVP)
  bool adaptive_chunks = false; // can size each chunk by predicted time (scheduler.adaptive_chunking)
};

const std::vector<SchedulerPolicy>& scheduler_policies();
std::vector<std::string> scheduler_types();  // the policies' `type`s, in registry order
const SchedulerPolicy* find_scheduler_policy(const std::string& type);  // null: none of that type
// Adds a policy before any run starts (not thread-safe); throws std::invalid_argument when its
// type is taken.
void register_scheduler_policy(SchedulerPolicy policy);

}  // namespace xp::serving
