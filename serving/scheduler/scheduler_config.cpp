#include "serving/scheduler/scheduler_config.h"

#include <fmt/format.h>

#include <cmath>

#include "core/config/error.h"
#include "serving/scheduler/policies.h"

namespace xp::serving {

SchedulerConfig SchedulerConfig::from(const config::ConfigReader& r) {
  SchedulerConfig c;
  r.get_enum("type", c.type, scheduler_types());
  r.get("max_num_seqs", c.max_num_seqs, config::Range::at_least(1));
  r.get("chunk_size", c.chunk_size, config::Range::at_least(1));
  r.get("max_prefill_chunks_per_batch", c.max_prefill_chunks_per_batch, config::Range::non_negative());
  r.get("max_batched_tokens", c.max_batched_tokens, config::Range::non_negative());
  r.get("block_size", c.block_size, config::Range::between(1, 65536));
  r.get("watermark", c.watermark, config::Range::fraction().open_above());
  auto d = r.section("dynamic_chunking");
  d.get("enabled", c.dynamic.enabled);
  d.get("low_chunk_size", c.dynamic.low_chunk_size, config::Range::non_negative());
  d.get("high_chunk_size", c.dynamic.high_chunk_size, config::Range::non_negative());
  d.get("max_tokens", c.dynamic.max_tokens, config::Range::non_negative());
  d.get("stages", c.dynamic.stages, config::Range::non_negative());
  d.finish();
  auto lt = r.section("latency_target");
  lt.get("enabled", c.latency_target.enabled);
  lt.get("target_iteration_s", c.latency_target.target_iteration_s, config::Range::positive());
  lt.get("safety_factor", c.latency_target.safety_factor, config::Range::positive());
  lt.get("low_free_kv_fraction", c.latency_target.low_free_kv_fraction, config::Range::fraction());
  lt.finish();
  auto ad = r.section("adaptive_chunking");
  ad.get("enabled", c.adaptive.enabled);
  ad.get("target_batch_time_s", c.adaptive.target_batch_time_s, config::Range::positive());
  ad.get("slack", c.adaptive.slack, config::Range::fraction().open_above());
  ad.get("start_chunk", c.adaptive.start_chunk, config::Range::at_least(1));
  ad.get("granularity", c.adaptive.granularity, config::Range::at_least(1));
  ad.get("min_chunk", c.adaptive.min_chunk, config::Range::at_least(1));
  ad.get("max_chunk", c.adaptive.max_chunk, config::Range::at_least(1));
  ad.get("grow_from_last_chunk", c.adaptive.grow_from_last_chunk);
  ad.get("long_prefill_tokens", c.adaptive.long_prefill_tokens, config::Range::at_least(1));
  ad.get("long_prefill_share", c.adaptive.long_prefill_share, config::Range::between(0.0, 0.9));
  ad.get("max_skipped_requests", c.adaptive.max_skipped_requests, config::Range::between(0, 1000000));
  ad.finish();
  if (c.adaptive.enabled && (c.latency_target.enabled || c.dynamic.enabled || !find_scheduler_policy(c.type)->adaptive_chunks))
    throw config::ConfigError("adaptive_chunking replaces the sarathi scheduler's budget: it cannot run with "
                              "latency_target or dynamic_chunking, nor under another scheduler type", {},
                              "scheduler.adaptive_chunking.enabled", "enable one way of sizing chunks, with type: sarathi_serve");
  if (c.adaptive.min_chunk > c.adaptive.max_chunk)
    throw config::ConfigError("adaptive_chunking.min_chunk is above max_chunk", {}, "scheduler.adaptive_chunking.min_chunk",
                              "the reference uses 32 and 4096");
  auto q = r.section("quirks");
  q.get("append_needs_free_block", c.quirks.append_needs_free_block);
  q.get("chunk_schedule_assert", c.quirks.chunk_schedule_assert);
  q.get("negative_chunk_budget", c.quirks.negative_chunk_budget);
  q.get("padded_prefill_tokens", c.quirks.padded_prefill_tokens);
  q.finish();
  r.finish();
  auto positive = [&](int64_t v, const char* key) {
    if (v <= 0) {
      const config::ConfigNode* n = r.raw(key);
      throw config::ConfigError(fmt::format("must be positive, got {}", v), n ? n->loc() : config::SourceLoc{},
                                config::join_path(r.path(), key), fmt::format("set {}.{}=<a value > 0>", r.path(), key));
    }
  };
  positive(c.max_num_seqs, "max_num_seqs");
  positive(c.chunk_size, "chunk_size");
  positive(c.block_size, "block_size");
  if (c.dynamic.enabled) dynamic_chunk_sizes(c.dynamic);  // validates
  return c;
}

std::vector<int64_t> dynamic_chunk_sizes(const DynamicChunking& d) {
  auto bad = [](const std::string& why) {
    return config::ConfigError("bad dynamic chunk schedule: " + why, {}, "scheduler.dynamic_chunking",
                               "set low_chunk_size and high_chunk_size (multiples of 32, low <= high), "
                               "stages >= 1 and max_tokens > 0");
  };
  if (d.stages < 1) throw bad("stages must be >= 1");
  if (d.low_chunk_size <= 0 || d.low_chunk_size > d.high_chunk_size) throw bad("need 0 < low_chunk_size <= high");
  if (d.low_chunk_size % 32 || d.high_chunk_size % 32) throw bad("chunk sizes must be multiples of 32");
  if (d.max_tokens <= 0) throw bad("max_tokens must be positive");
  std::vector<int64_t> sizes;
  double r = static_cast<double>(std::min<int64_t>(32, d.low_chunk_size));
  for (int64_t i = 0; i < d.stages; ++i) {
    double t = d.stages == 1 ? static_cast<double>(d.low_chunk_size)
                             : static_cast<double>(d.low_chunk_size) +
                                   static_cast<double>(d.high_chunk_size - d.low_chunk_size) * static_cast<double>(i) /
                                       static_cast<double>(d.stages - 1);
    double truncated = std::trunc(t);
    sizes.push_back(static_cast<int64_t>(std::nearbyint(truncated / r) * r));  // FE_TONEAREST: ties to even
  }
  return {sizes.rbegin(), sizes.rend()};
}

}  // namespace xp::serving
