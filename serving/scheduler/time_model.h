// Iteration-time models the schedulers may consult (docs/scheduling.md, "Latency target") and the
// simulator runs on. BatchShape is a Batch reduced to what costs time: prefill chunks with their
// cached context, and the KV length of each decode. A StageTimer times one pipeline stage (the
// simulator's profile-driven predictor is one); an IterationTimeModel predicts a whole iteration
// from the five features of the reference deadline scheduler. Implementations are immutable after
// construction and safe to share.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "serving/scheduler/sequence.h"

namespace xp::serving {

struct PrefillShape {
  int64_t chunk = 0;    // new prompt tokens
  int64_t context = 0;  // tokens already in the KV cache
};

// Under KV parallelism, the query tokens of a request whose KV spans `groups` groups: each group
// attends to its own shard, and their partial outputs are merged across the groups.
struct KvpMerge {
  int64_t tokens = 0;
  int64_t groups = 1;
};

struct BatchShape {
  std::vector<PrefillShape> prefills;
  std::vector<int64_t> decode_contexts;  // KV length each decode attends to
  std::vector<KvpMerge> kvp_merges;      // KV-parallel groups: the items whose attention is merged
  int64_t num_tokens() const;
  static BatchShape of(const Batch& b);
};

class StageTimer {
 public:
  virtual ~StageTimer() = default;
  virtual double stage_time_s(const BatchShape& b, int64_t stage) const = 0;
  virtual double stage_flops(const BatchShape& b) const = 0;
};

class IterationTimeModel {
 public:
  virtual ~IterationTimeModel() = default;
  virtual double predict_s(const BatchShape& b) const = 0;
};

// A StageTimer read as the Mnemosyne reference predicts a batch for adaptive chunking:
// stage 0's time × the number of stages (a pipeline's TBT spans all of them).
class StageTimerModel final : public IterationTimeModel {
 public:
  StageTimerModel(std::shared_ptr<const StageTimer> timer, int64_t stages) : timer_(std::move(timer)), stages_(stages) {}
  double predict_s(const BatchShape& b) const override {
    return timer_->stage_time_s(b, 0) * static_cast<double>(stages_);
  }

 private:
  std::shared_ptr<const StageTimer> timer_;
  int64_t stages_;
};

// The predictor: time = c · (1, batch tokens, prefill tokens, decode tokens, Σ decode
// context, Σ prefill context), with one coefficient set up to 512 tokens (memory-bound) and one
// above (compute-bound). fit() samples a StageTimer over all `stages` and solves least squares.
class LinearIterationModel final : public IterationTimeModel {
 public:
  using Coefficients = std::array<double, 6>;
  LinearIterationModel(Coefficients small, Coefficients large) : small_(small), large_(large) {}
  static LinearIterationModel fit(const StageTimer& timer, int64_t stages, int64_t max_context);
  double predict_s(const BatchShape& b) const override;
  const Coefficients& small() const { return small_; }
  const Coefficients& large() const { return large_; }

 private:
  Coefficients small_, large_;
};

}  // namespace xp::serving
