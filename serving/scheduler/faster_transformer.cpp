// FasterTransformer: request-level (static) batching (docs/scheduling.md). Every running request
// decodes; only when none is left does a new batch of full prompts start. Max-length KV
// reservation, so nothing is ever preempted.
#include "serving/scheduler/replica_scheduler.h"

namespace xp::serving {
namespace {

class FasterTransformer final : public ReplicaScheduler {
 public:
  FasterTransformer(const SchedulerConfig& c, int64_t blocks) : ReplicaScheduler(c, blocks, /*watermark=*/0.0) {}

 protected:
  int64_t admission_blocks(const Sequence&) const override { return kv_.blocks_for(cfg_.max_model_len); }

  void build(double now, Batch& b) override {
    decode_all_reserved(b);
    if (b.empty()) admit_whole_prompts(now, b);  // nothing joins while the batch still decodes
  }
};

}  // namespace

std::unique_ptr<ReplicaScheduler> make_faster_transformer(const SchedulerConfig& cfg, int64_t num_kv_blocks) {
  return std::unique_ptr<ReplicaScheduler>(new FasterTransformer(cfg, num_kv_blocks));
}

}  // namespace xp::serving
