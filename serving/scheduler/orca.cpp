// Orca: iteration-level batching (docs/scheduling.md). All running decodes plus new requests' full
// prompts in the same iteration; no token budget, prompts never split. Max-length KV
// reservation, so no preemption.
#include "serving/scheduler/replica_scheduler.h"

namespace xp::serving {
namespace {

class Orca final : public ReplicaScheduler {
 public:
  Orca(const SchedulerConfig& c, int64_t blocks) : ReplicaScheduler(c, blocks, /*watermark=*/0.0) {}

 protected:
  int64_t admission_blocks(const Sequence&) const override { return kv_.blocks_for(cfg_.max_model_len); }

  void build(double now, Batch& b) override {
    decode_all_reserved(b);
    admit_whole_prompts(now, b);
  }
};

}  // namespace

std::unique_ptr<ReplicaScheduler> make_orca(const SchedulerConfig& cfg, int64_t num_kv_blocks) {
  return std::unique_ptr<ReplicaScheduler>(new Orca(cfg, num_kv_blocks));
}

}  // namespace xp::serving
