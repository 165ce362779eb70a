// Sarathi-Serve: stall-free batching under a token budget τ = chunk_size (serving.md §3.6), with
// SARATHI's decode-maximal variant (max_prefill_chunks_per_batch = 1, §3.5), the dynamic chunk
// schedule (§3.7) and the latency-predictor-driven budget (§3.8). Every paused decode joins every iteration; partial prefills continue,
// then new requests are admitted FCFS, all within the budget left after the decodes.
#include <fmt/format.h>

#include <deque>
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
      int64_t c = next_chunk(*s, n_tok);
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
      int64_t c = next_chunk(*waiting_.front(), n_tok);
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
  // decodes alone exceed the budget.
  int64_t next_chunk(const Sequence& s, int64_t n_tok) const {
    return std::min(s.remaining_stage_prefill(), budget(s) - n_tok);
  }

  std::vector<int64_t> sizes_;
  int64_t tokens_per_stage_ = 1;
  int64_t iteration_budget_ = 0;  // §3.8 budget of the iteration being built
};

}  // namespace

std::unique_ptr<ReplicaScheduler> make_sarathi(const SchedulerConfig& cfg, int64_t num_kv_blocks) {
  return std::unique_ptr<ReplicaScheduler>(new Sarathi(cfg, num_kv_blocks));
}

}  // namespace xp::serving
