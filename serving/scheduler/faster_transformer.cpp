// FasterTransformer: request-level (static) batching (serving.md §3.1). Every running request
// decodes; only when none is left does a new batch of full prompts start. Max-length KV
// reservation, so nothing is ever preempted.
#include "serving/scheduler/policies.h"

namespace xp::serving {
namespace {

class FasterTransformer final : public ReplicaScheduler {
 public:
  FasterTransformer(const SchedulerConfig& c, int64_t blocks) : ReplicaScheduler(c, blocks, /*watermark=*/0.0) {}

 protected:
  int64_t admission_blocks(const Sequence&) const override { return blocks_.blocks_for(cfg_.max_model_len); }

  void build(double now, Batch& b) override {
    for (Sequence* s : running_) {
      if (!paused(s)) continue;
      blocks_.append_slot(s->id(), s->len());  // within the max-length reservation
      b.items.push_back({s->id(), 1, false, s->len() - 1});
    }
    if (!b.empty()) return;
    while (!waiting_.empty()) {
      Admit a = check_admission(now, static_cast<int64_t>(running_.size()) + 1);
      if (a == Admit::kIgnored) continue;
      if (a != Admit::kOk) break;
      Sequence* s = admit_front(now);
      add_prefill(s, s->prompt_len(), b);
    }
  }
};

}  // namespace

std::unique_ptr<ReplicaScheduler> make_faster_transformer(const SchedulerConfig& cfg, int64_t num_kv_blocks) {
  return std::unique_ptr<ReplicaScheduler>(new FasterTransformer(cfg, num_kv_blocks));
}

}  // namespace xp::serving
