// Sarathi-Serve: stall-free batching under a token budget τ = chunk_size (docs/scheduling.md), with
// SARATHI's decode-maximal variant (max_prefill_chunks_per_batch = 1), the dynamic chunk
// schedule, the latency-predictor-driven budget and Mnemosyne's adaptive chunks
// (docs/mnemosyne.md). Every paused decode joins every iteration; partial prefills continue, then new requests
// are admitted FCFS, all within the budget left after the decodes.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <map>
#include <set>
#include <stdexcept>

#include "core/runtime/check.h"
#include "serving/scheduler/replica_scheduler.h"

namespace xp::serving {
namespace {

class Sarathi final : public ReplicaScheduler {
 public:
  Sarathi(const SchedulerConfig& c, int64_t blocks) : ReplicaScheduler(c, blocks, c.watermark) {
    if (c.dynamic.enabled) {
      sizes_ = dynamic_chunk_sizes(c.dynamic);
      tokens_per_stage_ = (c.dynamic.max_tokens + c.dynamic.stages - 1) / c.dynamic.stages;
    }
  }

 protected:
  void build(double now, Batch& b) override {
    int64_t n_tok = 0, chunks = 0;
    std::deque<Sequence*> order = running_by_priority();
    const auto micro_cap = static_cast<size_t>(cfg_.micro_batch_cap());

    // Phase 1a: decodes first; the budget never drops one (the micro-batch cap, as Vidur's, does).
    std::vector<Sequence*> partial;
    while (!order.empty() && b.items.size() < micro_cap) {
      Sequence* s = order.front();
      order.pop_front();
      if (!paused(s)) continue;
      if (!s->stage_prefill_done()) {
        partial.push_back(s);
        continue;
      }
      if (schedule_decode(s, order, b)) ++n_tok;
    }
    if (cfg_.latency_target.enabled) iteration_budget_ = latency_budget(b, partial);
    // Phase 1b: continue partial prefills (their memory is reserved already; a victim of
    // phase 1a is WAITING now and skipped).
    for (Sequence* s : partial) {
      if (!paused(s) || chunk_cap_reached(chunks)) continue;
      int64_t c = next_chunk(*s, n_tok, b);
      if (c > 0) {
        add_prefill(s, c, b);
        n_tok += c;
        ++chunks;
      }
    }
    // Phase 2: admit new requests FCFS; stop at the first that cannot start (adaptive chunking:
    // pass over up to max_skipped_requests that cannot, as the Mnemosyne reference does, so a
    // long prompt that must wait does not hold the short ones behind it).
    size_t skipped = 0;
    const size_t may_skip = cfg_.adaptive.enabled ? static_cast<size_t>(cfg_.adaptive.max_skipped_requests) : 0;
    while (skipped < waiting_.size() && !chunk_cap_reached(chunks) && b.items.size() < micro_cap) {
      Admit a = check_admission(now, static_cast<int64_t>(running_.size()) + 1, skipped);
      if (a == Admit::kIgnored) continue;
      if (a == Admit::kNotArrived || a == Admit::kBatchFull) break;
      int64_t c = a == Admit::kOk ? next_chunk(*waiting_[skipped], n_tok, b) : 0;
      if (c == 0 || (c < 0 && !cfg_.quirks.negative_chunk_budget)) {
        if (skipped < may_skip) {
          ++skipped;
          continue;
        }
        break;
      }
      if (c < 0) c = 0;  // reference quirk: a negative budget admits with an empty chunk
      Sequence* s = admit(skipped);
      if (c > 0) add_prefill(s, c, b);
      n_tok += c;
      ++chunks;
    }
  }

 private:
  bool chunk_cap_reached(int64_t chunks) const {
    return cfg_.max_prefill_chunks_per_batch > 0 && chunks >= cfg_.max_prefill_chunks_per_batch;
  }

  // Latency target: the largest grid total whose predicted time (× safety) fits the target, for the
  // decodes already in `b` plus one chunk at the context of the next prefill to continue.
  int64_t latency_budget(const Batch& b, const std::vector<Sequence*>& partial) const {
    EXP_CHECK(time_model_, "latency_target chunking needs a time model (ReplicaScheduler::set_time_model)");
    static const std::vector<int64_t> kGrid = {128, 256, 512, 1024, 2048, 2552};
    const auto& lt = cfg_.latency_target;
    bool low_kv = static_cast<double>(kv_.num_free()) < lt.low_free_kv_fraction * static_cast<double>(kv_.num_total());
    int64_t context = 0;
    for (const Sequence* s : partial)
      if (paused(s)) {
        context = s->stage_processed();
        break;
      }
    BatchShape shape = BatchShape::of(b);
    auto decodes = static_cast<int64_t>(shape.decode_contexts.size());
    int64_t best = kGrid.front();
    for (int64_t total : kGrid) {
      if (low_kv && total > 512) break;
      BatchShape candidate = shape;
      if (total > decodes) candidate.prefills.push_back({total - decodes, context});
      if (lt.safety_factor * time_model_->predict_s(candidate) <= lt.target_iteration_s) best = total;
    }
    return best;
  }

  int64_t budget(const Sequence& s) const {
    if (cfg_.latency_target.enabled) return iteration_budget_;
    if (sizes_.empty()) return cfg_.chunk_size;
    int64_t idx = s.stage_processed() / tokens_per_stage_;
    if (idx >= static_cast<int64_t>(sizes_.size())) {
      if (cfg_.quirks.chunk_schedule_assert)
        throw std::runtime_error(fmt::format("request {} prefix {} passes chunk_schedule_max_tokens (reference assert)",
                                             s.id(), s.stage_processed()));
      idx = static_cast<int64_t>(sizes_.size()) - 1;
    }
    return sizes_[static_cast<size_t>(idx)];
  }

  // min(remaining prompt, budget − tokens already in the batch); may be negative when the
  // decodes alone exceed the budget. Adaptive chunking sizes the chunk by time instead.
  int64_t next_chunk(const Sequence& s, int64_t n_tok, const Batch& b) {
    if (cfg_.adaptive.enabled) return adaptive_chunk(s, b);
    return std::min(chunk_limit(s), budget(s) - n_tok);
  }

  // Adaptive chunks, as the reference's get_max_chunk_size_for_request: 0 when the batch already takes
  // target·(1 − slack); else a binary search in steps of `granularity` for a chunk whose batch time
  // lands within target·(1 ± slack), keeping the closest one tried. Under KV parallelism the batch
  // is the one of the slowest group among those the chunk goes to.
  int64_t adaptive_chunk(const Sequence& s, const Batch& b) {
    EXP_CHECK(time_model_, "adaptive chunking needs a time model (ReplicaScheduler::set_time_model)");
    const AdaptiveChunking& a = cfg_.adaptive;
    double target = a.target_batch_time_s;
    if (a.long_prefill_share > 0 && s.prompt_len() >= a.long_prefill_tokens) {  // space sharing
      for (const auto& it : b.items)
        if (it.is_prefill && seqs_.at(it.seq_id).prompt_len() >= a.long_prefill_tokens) return 0;
      target *= 1 - a.long_prefill_share;
    }
    const double low_t = target * (1 - a.slack), high_t = target * (1 + a.slack);
    // A request not admitted yet: the groups its admission would choose.
    std::vector<int32_t> groups = kv_.groups(s.id());
    if (groups.empty()) groups = kv_.placement(admission_blocks(s));
    std::vector<BatchShape> shapes = group_shapes(b);
    std::vector<BatchShape> probe(shapes.size());
    add_to_groups({s.id(), 1, true, s.stage_processed()}, groups, probe);  // which groups it reaches
    size_t slowest = 0;
    double slowest_t = -1;
    for (size_t g = 0; g < probe.size(); ++g) {
      if (probe[g].prefills.empty()) continue;
      const double t = shapes[g].num_tokens() > 0 ? time_model_->predict_s(shapes[g]) : 0.0;
      if (t > slowest_t) {
        slowest = g;
        slowest_t = t;
      }
    }
    if (slowest_t > low_t) return 0;
    const BatchShape& shape = shapes[slowest];
    const PrefillShape as_seen = probe[slowest].prefills.front();  // the chunk as that group sees it
    const int64_t remaining = std::max<int64_t>(chunk_limit(s), 0);
    auto round_down = [&](int64_t v) { return v / a.granularity * a.granularity; };
    const auto last = last_chunk_.find(s.id());
    int64_t high = round_down(2 * (a.grow_from_last_chunk && last != last_chunk_.end() ? last->second : a.start_chunk));
    high = std::min({remaining, high, a.max_chunk});
    int64_t low = 0, closest = 0;
    double closest_t = -1;
    std::set<int64_t> seen;
    while (low <= high) {
      int64_t mid = (low + high) / 2;
      if (mid < remaining) {
        mid = round_down(mid);
        if (mid == 0) mid = std::min(remaining, a.min_chunk);
      } else {
        mid = remaining;
      }
      mid = std::min(mid, a.max_chunk);
      if (mid == 0 || !seen.insert(mid).second) break;
      BatchShape candidate = shape;
      candidate.prefills.push_back({mid, as_seen.context});
      if (!probe[slowest].kvp_merges.empty()) candidate.kvp_merges.push_back({mid, probe[slowest].kvp_merges.front().groups});
      const double t = time_model_->predict_s(candidate);
      if (t >= low_t && t <= high_t) {
        closest = mid;
        break;
      }
      (t < low_t ? low : high) = mid;
      if (closest_t < 0 || std::abs(t - target) < std::abs(closest_t - target)) {
        closest = mid;
        closest_t = t;
      }
    }
    if (closest > 0) last_chunk_[s.id()] = closest;
    if (closest >= s.remaining_stage_prefill()) last_chunk_.erase(s.id());  // its prefill ends with this chunk
    return closest;
  }

  std::vector<int64_t> sizes_;
  int64_t tokens_per_stage_ = 1;
  int64_t iteration_budget_ = 0;  // the latency target's budget for the iteration being built
  std::map<uint64_t, int64_t> last_chunk_;  // adaptive chunks: each prefilling request's previous chunk
};

}  // namespace

std::unique_ptr<ReplicaScheduler> make_sarathi(const SchedulerConfig& cfg, int64_t num_kv_blocks) {
  return std::unique_ptr<ReplicaScheduler>(new Sarathi(cfg, num_kv_blocks));
}

}  // namespace xp::serving
