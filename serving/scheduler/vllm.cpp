// vLLM: prefill-prioritising (docs/scheduling.md). If any waiting request can be admitted, the
// iteration is prefill-only (whole prompts, head-of-line FCFS under max_batched_tokens) and
// running decodes stall; otherwise every running request decodes, preempting by recompute
// when KV blocks run out.
#include <algorithm>
#include <deque>

#include "serving/scheduler/replica_scheduler.h"

namespace xp::serving {
namespace {

class Vllm final : public ReplicaScheduler {
 public:
  Vllm(const SchedulerConfig& c, int64_t blocks) : ReplicaScheduler(c, blocks, c.watermark) {}

 protected:
  int64_t prompt_limit() const override { return token_cap(); }

  void build(double now, Batch& b) override {
    const auto micro_cap = static_cast<size_t>(cfg_.micro_batch_cap());
    int64_t n_tok = 0, longest = 0;
    while (!waiting_.empty() && b.items.size() < micro_cap) {
      Admit a = check_admission(now, static_cast<int64_t>(running_.size()) + 1);
      if (a == Admit::kIgnored) continue;
      if (a != Admit::kOk) break;
      int64_t p = waiting_.front()->prompt_len();
      const int64_t count = static_cast<int64_t>(b.items.size()) + 1;
      const int64_t tokens = cfg_.quirks.padded_prefill_tokens ? count * std::max(longest, p) : n_tok + p;
      if (tokens > token_cap()) break;
      add_prefill(admit(), p, b);
      n_tok += p;
      longest = std::max(longest, p);
    }
    if (!b.empty()) return;  // a prefill-only iteration: decodes stall
    std::deque<Sequence*> order = running_by_priority();
    while (!order.empty() && b.items.size() < micro_cap) {
      Sequence* s = order.front();
      order.pop_front();
      if (paused(s)) schedule_decode(s, order, b);
    }
  }

 private:
  int64_t token_cap() const {
    return cfg_.max_batched_tokens > 0 ? std::min(cfg_.max_batched_tokens, cfg_.max_model_len) : cfg_.max_model_len;
  }
};

}  // namespace

std::unique_ptr<ReplicaScheduler> make_vllm(const SchedulerConfig& cfg, int64_t num_kv_blocks) {
  return std::unique_ptr<ReplicaScheduler>(new Vllm(cfg, num_kv_blocks));
}

}  // namespace xp::serving
