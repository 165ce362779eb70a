// Sarathi-Serve: stall-free batching under a token budget τ = chunk_size (serving.md §3.6), with
// SARATHI's decode-maximal variant (max_prefill_chunks_per_batch = 1, §3.5), the dynamic chunk
// schedule (§3.7), the latency-predictor-driven budget (§3.8) and Mnemosyne's adaptive chunks
// (§4.1). Every paused decode joins every iteration; partial prefills continue, then new requests
// are admitted FCFS, all within the budget left after the decodes.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <map>
#include <set>
#include <stdexcept>

#include "core/runtime/check.h"
#include "serving/scheduler/policies.h"

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
    // Phase 2: admit new requests FCFS; stop at the first that cannot start.
    while (!waiting_.empty() && !chunk_cap_reached(chunks) && b.items.size() < micro_cap) {
      Admit a = check_admission(now, static_cast<int64_t>(running_.size()) + 1);
      if (a == Admit::kIgnored) continue;
      if (a != Admit::kOk) break;
      int64_t c = next_chunk(*waiting_.front(), n_tok, b);
      if (c == 0 || (c < 0 && !cfg_.quirks.negative_chunk_budget)) break;
      if (c < 0) c = 0;  // reference quirk: a negative budget admits with an empty chunk
      Sequence* s = admit_front(now);
      if (c > 0) add_prefill(s, c, b);
      n_tok += c;
      ++chunks;
    }
  }

 private:
  bool chunk_cap_reached(int64_t chunks) const {
    return cfg_.max_prefill_chunks_per_batch > 0 && chunks >= cfg_.max_prefill_chunks_per_batch;
  }

  // §3.8: the largest grid total whose predicted time (× safety) fits the target, for the
  // decodes already in `b` plus one chunk at the context of the next prefill to continue.
  int64_t latency_budget(const Batch& b, const std::vector<Sequence*>& partial) const {
    EXP_CHECK(time_model_, "latency_target chunking needs a time model (ReplicaScheduler::set_time_model)");
    static const std::vector<int64_t> kGrid = {128, 256, 512, 1024, 2048, 2552};
    const auto& lt = cfg_.latency_target;
    bool low_kv = static_cast<double>(blocks_.num_free()) < lt.low_free_kv_fraction * static_cast<double>(blocks_.num_total());
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
    return std::min(s.remaining_stage_prefill(), budget(s) - n_tok);
  }

  // §4.1, as the reference's get_max_chunk_size_for_request: 0 when the batch already takes
  // target·(1 − slack); else a binary search in steps of `granularity` for a chunk whose batch time
  // lands within target·(1 ± slack), keeping the closest one tried.
  int64_t adaptive_chunk(const Sequence& s, const Batch& b) {
    EXP_CHECK(time_model_, "adaptive chunking needs a time model (ReplicaScheduler::set_time_model)");
    const AdaptiveChunking& a = cfg_.adaptive;
    const double target = a.target_batch_time_s, low_t = target * (1 - a.slack), high_t = target * (1 + a.slack);
    const BatchShape shape = BatchShape::of(b);
    if (!b.items.empty() && time_model_->predict_s(shape) > low_t) return 0;
    const int64_t remaining = std::max<int64_t>(s.remaining_stage_prefill(), 0);
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
      candidate.prefills.push_back({mid, s.stage_processed()});
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
    if (closest >= remaining) last_chunk_.erase(s.id());  // its prefill ends with this chunk
    return closest;
  }

  std::vector<int64_t> sizes_;
  int64_t tokens_per_stage_ = 1;
  int64_t iteration_budget_ = 0;  // §3.8 budget of the iteration being built
  std::map<uint64_t, int64_t> last_chunk_;  // §4.1: each prefilling request's previous chunk
};

}  // namespace

std::unique_ptr<ReplicaScheduler> make_sarathi(const SchedulerConfig& cfg, int64_t num_kv_blocks) {
  return std::unique_ptr<ReplicaScheduler>(new Sarathi(cfg, num_kv_blocks));
}

}  // namespace xp::serving
