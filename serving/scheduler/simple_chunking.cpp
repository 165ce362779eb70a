// SimpleChunking: the "chunked prefills only" ablation (serving.md §3.4). Prefill turns (chunks
// of at most chunk_size tokens in all) and decode turns alternate; decodes never share an
// iteration with prefill work.
#include <deque>

#include "serving/scheduler/policies.h"

namespace xp::serving {
namespace {

class SimpleChunking final : public ReplicaScheduler {
 public:
  SimpleChunking(const SchedulerConfig& c, int64_t blocks) : ReplicaScheduler(c, blocks, c.watermark) {}

 protected:
  void build(double now, Batch& b) override {
    if (prefill_turn_) {
      int64_t n_tok = 0;
      for (uint64_t id : running_by_priority()) {
        if (!paused(id) || seq(id).stage_prefill_done()) continue;
        int64_t c = std::min(seq(id).remaining_stage_prefill(), cfg_.chunk_size - n_tok);
        if (c <= 0) break;
        add_prefill(id, c, b);
        n_tok += c;
      }
      if (b.empty()) {
        while (!waiting_.empty()) {
          Admit a = check_admission(now, static_cast<int64_t>(running_.size()) + 1);
          if (a == Admit::kIgnored) continue;
          if (a != Admit::kOk) break;
          int64_t c = std::min(seq(waiting_.front()).prompt_len(), cfg_.chunk_size - n_tok);
          if (c <= 0) break;
          uint64_t id = admit_front(now);
          add_prefill(id, c, b);
          n_tok += c;
        }
      }
      if (!b.empty()) {
        prefill_turn_ = false;
        return;
      }
    }
    std::deque<uint64_t> order;
    for (uint64_t id : running_by_priority()) order.push_back(id);
    while (!order.empty()) {
      uint64_t id = order.front();
      order.pop_front();
      if (paused(id) && seq(id).prefill_done()) schedule_decode(id, order, b);
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
