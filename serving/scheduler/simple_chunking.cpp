// SimpleChunking: the "chunked prefills only" ablation (docs/scheduling.md). Prefill turns (chunks
// of at most chunk_size tokens in all) and decode turns alternate; decodes never share an
// iteration with prefill work.
#include <deque>

#include "serving/scheduler/replica_scheduler.h"

namespace xp::serving {
namespace {

class SimpleChunking final : public ReplicaScheduler {
 public:
  SimpleChunking(const SchedulerConfig& c, int64_t blocks) : ReplicaScheduler(c, blocks, c.watermark) {}

 protected:
  void build(double now, Batch& b) override {
    if (prefill_turn_) {
      int64_t n_tok = 0;
      for (Sequence* s : running_) {
        if (!paused(s) || s->stage_prefill_done()) continue;
        int64_t c = std::min(s->remaining_stage_prefill(), cfg_.chunk_size - n_tok);
        if (c <= 0) break;
        add_prefill(s, c, b);
        n_tok += c;
      }
      if (b.empty()) {
        while (!waiting_.empty()) {
          Admit a = check_admission(now, static_cast<int64_t>(running_.size()) + 1);
          if (a == Admit::kIgnored) continue;
          if (a != Admit::kOk) break;
          int64_t c = std::min(waiting_.front()->prompt_len(), cfg_.chunk_size - n_tok);
          if (c <= 0) break;
          add_prefill(admit(), c, b);
          n_tok += c;
        }
      }
      if (!b.empty()) {
        prefill_turn_ = false;
        return;
      }
    }
    std::deque<Sequence*> order = running_by_priority();
    while (!order.empty()) {
      Sequence* s = order.front();
      order.pop_front();
      if (paused(s) && s->prefill_done()) schedule_decode(s, order, b);
    }
    prefill_turn_ = true;
  }

 private:
  bool prefill_turn_ = true;
};

}  // namespace

std::unique_ptr<ReplicaScheduler> make_simple_chunking(const SchedulerConfig& cfg, int64_t num_kv_blocks) {
  return std::unique_ptr<ReplicaScheduler>(new SimpleChunking(cfg, num_kv_blocks));
}

}  // namespace xp::serving
