#include "serving/scheduler/policies.h"

#include <stdexcept>

namespace xp::serving {

// Each defined in the policy's own file.
std::unique_ptr<ReplicaScheduler> make_faster_transformer(const SchedulerConfig& cfg, int64_t num_kv_blocks);
std::unique_ptr<ReplicaScheduler> make_orca(const SchedulerConfig& cfg, int64_t num_kv_blocks);
std::unique_ptr<ReplicaScheduler> make_vllm(const SchedulerConfig& cfg, int64_t num_kv_blocks);
std::unique_ptr<ReplicaScheduler> make_simple_chunking(const SchedulerConfig& cfg, int64_t num_kv_blocks);
std::unique_ptr<ReplicaScheduler> make_sarathi(const SchedulerConfig& cfg, int64_t num_kv_blocks);

namespace {

std::vector<SchedulerPolicy>& registry() {
  static std::vector<SchedulerPolicy> all = {
      {"faster_transformer", "request-level batching: a batch runs to its last request's end", make_faster_transformer},
      {"orca", "iteration-level batching with whole prompts, max-length KV reservations", make_orca},
      {"vllm", "prefill-prioritising: prompt-only iterations stall the decodes", make_vllm},
      {"simple_chunking", "chunked prefills alternating with decode iterations (the ablation)", make_simple_chunking,
       /*chunks_prompts=*/true},
      // One policy under two names, so that each shipped option names its own type; the
      // options differ only in settings (max_prefill_chunks_per_batch, chunk sizing).
      {"sarathi", "SARATHI decode-maximal batching: prefill chunks topped up with decodes to a token budget",
       make_sarathi, /*chunks_prompts=*/true, /*kv_parallel=*/true, /*adaptive_chunks=*/true},
      {"sarathi_serve", "Sarathi-Serve stall-free batching under a token budget (and Mnemosyne's adaptive chunks)",
       make_sarathi, /*chunks_prompts=*/true, /*kv_parallel=*/true, /*adaptive_chunks=*/true},
  };
  return all;
}

}  // namespace

const std::vector<SchedulerPolicy>& scheduler_policies() { return registry(); }

void register_scheduler_policy(SchedulerPolicy policy) {
  if (find_scheduler_policy(policy.type))
    throw std::invalid_argument("a scheduler policy of type '" + policy.type + "' is registered already");
  registry().push_back(std::move(policy));
}

const SchedulerPolicy* find_scheduler_policy(const std::string& type) {
  for (const auto& p : scheduler_policies())
    if (p.type == type) return &p;
  return nullptr;
}

std::vector<std::string> scheduler_types() {
  std::vector<std::string> out;
  for (const auto& p : scheduler_policies()) out.push_back(p.type);
  return out;
}

}  // namespace xp::serving
