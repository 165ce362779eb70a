// Internal: one factory per policy (each in its own file); ReplicaScheduler::create picks one.
#pragma once
#include <memory>

#include "serving/scheduler/replica_scheduler.h"

namespace xp::serving {

std::unique_ptr<ReplicaScheduler> make_faster_transformer(const SchedulerConfig& cfg, int64_t num_kv_blocks);
std::unique_ptr<ReplicaScheduler> make_orca(const SchedulerConfig& cfg, int64_t num_kv_blocks);
std::unique_ptr<ReplicaScheduler> make_vllm(const SchedulerConfig& cfg, int64_t num_kv_blocks);
std::unique_ptr<ReplicaScheduler> make_simple_chunking(const SchedulerConfig& cfg, int64_t num_kv_blocks);
std::unique_ptr<ReplicaScheduler> make_sarathi(const SchedulerConfig& cfg, int64_t num_kv_blocks);

}  // namespace xp::serving
