// Replica scheduler settings (docs/scheduling.md), every default sarathi-serve's. Read from the
// `scheduler:` config section; `type` picks the policy (scheduler=NAME selects a
// configs/scheduler/NAME.yaml that sets it).
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "core/config/reader.h"

namespace xp::serving {

// The dynamic chunk schedule: a budget by prefix length, falling from high_chunk_size to low_chunk_size.
struct DynamicChunking {
  bool enabled = false;
  int64_t low_chunk_size = 0;   // multiple of 32
  int64_t high_chunk_size = 0;  // multiple of 32
  int64_t max_tokens = 0;       // chunk_schedule_max_tokens
  int64_t stages = 0;           // chunk_schedule_stages
};

// Latency-targeted chunking: the iteration's token budget is the largest total from a grid whose predicted time,
// with a safety factor, fits the target; needs an IterationTimeModel (set_time_model).
struct LatencyTargetChunking {
  bool enabled = false;
  double target_iteration_s = 0.05;   // the slack an iteration may use (e.g. the TBT SLO)
  double safety_factor = 1.2;         // predicted time is multiplied by this before comparing
  double low_free_kv_fraction = 0.1;  // below this share of free KV blocks, totals stop at 512
};

// Mnemosyne's adaptive chunking: each prefill's chunk is the largest whose predicted batch
// time (the time model's, over all pipeline stages) meets the TBT target, found by the reference's
// binary search (the Vidur fork's get_max_chunk_size_for_request): chunks start large and shrink
// as the prefix grows. Needs an IterationTimeModel (set_time_model); replaces the token budget.
struct AdaptiveChunking {
  bool enabled = false;
  double target_batch_time_s = 0.05;  // the TBT target
  double slack = 0.1;                 // a time within target·(1 ± slack) is accepted at once
  int64_t start_chunk = 512, granularity = 32, min_chunk = 32, max_chunk = 4096;
  // The search's upper bound is 2 × the request's previous chunk. The reference stores that chunk
  // under a name Python mangles and looks it up unmangled, so it never finds it and always starts
  // from 2 × start_chunk: false (default) is the reference, true the rule as its comment says.
  bool grow_from_last_chunk = false;
  // Space sharing (Mnemosyne's ST scheduler, Vajra's "long" sequences): a prompt whose KV has
  // reached `long_prefill_tokens` sizes its chunk for target·(1 − long_prefill_share), leaving the
  // rest of each iteration to other requests' prefills, and no two such prompts share a batch.
  // Without it a million-token prefill holds every request that arrives behind it for minutes.
  // The reference's share is the request's remaining slack fraction, capped at 0.5; a long prompt
  // has ample slack for most of its prefill, so the cap is what applies (0 = no space sharing).
  int64_t long_prefill_tokens = 262144;
  double long_prefill_share = 0.5;
  // New requests that cannot start now (no memory, or no chunk fits) are passed over, up to this
  // many per iteration, for those behind them (the reference's MAX_NUM_SKIPPED_REQUESTS).
  int64_t max_skipped_requests = 10;
};

// Reference behaviours that look like bugs, kept switchable (docs/scheduling.md). Defaults follow the
// reference where the spec says it is the reference rule, and clamp where it says "our default".
struct Quirks {
  bool append_needs_free_block = true;   // can_append_slot needs a whole free block
  bool chunk_schedule_assert = false;    // true: a prompt past max_tokens is an error (reference)
  bool negative_chunk_budget = false;    // true: only c == 0 stops admission (reference)
  // vLLM's prefill token cap counted as Vidur counts it, as a padded batch: requests × the
  // longest prompt (false: the sum of the prompts, as vLLM's token budget counts them).
  bool padded_prefill_tokens = false;
};

struct SchedulerConfig {
  std::string type = "sarathi";           // a policy of scheduler_policies() (policies.h)
  int64_t max_num_seqs = 128;             // batch-size cap (requests admitted at once)
  int64_t chunk_size = 512;               // sarathi: the token budget τ; simple_chunking: the chunk
  int64_t max_prefill_chunks_per_batch = 0;  // sarathi: 0 = no cap; 1 = SARATHI decode-maximal
  int64_t max_batched_tokens = 0;         // vllm prefill token cap; 0 = max_model_len
  int64_t block_size = 16;                // KV tokens per block
  double watermark = 0.01;                // fraction of blocks kept free at admission (vllm/sarathi)
  DynamicChunking dynamic;
  LatencyTargetChunking latency_target;
  AdaptiveChunking adaptive;
  Quirks quirks;

  // Filled by the caller from the model and the deployment, not from this section:
  int64_t max_model_len = 4096;
  int64_t pipeline_stages = 1;
  // Mnemosyne's sequence pipeline parallelism: a prompt's next chunk is schedulable once
  // its previous one leaves stage 0 (on_stage_completed), not the last stage.
  bool sequence_pipeline_parallel = false;
  // Mnemosyne's KV-cache parallelism: the replica's KV cache is this many groups of
  // `max_tokens_per_kvp_group` tokens of a sequence each (KvGroups); a prompt's chunk never crosses
  // from one group into the next.
  int64_t kv_parallel = 1;
  int64_t max_tokens_per_kvp_group = 0;

  // Requests in one micro-batch: with pipeline stages in flight at once, each holds at most
  // max_num_seqs / stages (Vidur's vLLM and Sarathi replica schedulers; 1 stage: no change).
  int64_t micro_batch_cap() const { return std::max<int64_t>(1, max_num_seqs / std::max<int64_t>(1, pipeline_stages)); }

  static SchedulerConfig from(const config::ConfigReader& r);
};

// The dynamic schedule's sizes: reverse(linspace(low, high, stages)), each rounded to the nearest multiple of
// min(32, low) with ties to even. Throws ConfigError on bad parameters.
std::vector<int64_t> dynamic_chunk_sizes(const DynamicChunking& d);

}  // namespace xp::serving
