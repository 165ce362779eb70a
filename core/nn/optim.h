// Optimizers over a module's parameters, with PyTorch's update rules (so a run here and the same
// run in PyTorch follow the same trajectory up to float rounding), and the cosine schedule.
// Optimizer state is a list of named tensors — moments plus the step count — so it goes into
// the same state dict as the model. Weight decay is L2 added to the gradient (torch.optim.SGD and
// torch.optim.Adam) unless Adam's is decoupled (torch.optim.AdamW).
#pragma once
#include <algorithm>
#include <cstdint>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "core/nn/module.h"

namespace xp::nn {

using NamedParameters = std::vector<std::pair<std::string, Parameter*>>;

// A run of parameter elements, counted over the parameters laid end to end in their order.
struct ElementRange {
  int64_t begin = 0;
  int64_t end = INT64_MAX;
  // The part of this range inside the `n` elements that start at `offset`, counted from there
  // (empty: lo == hi).
  std::pair<int64_t, int64_t> within(int64_t offset, int64_t n) const {
    const int64_t lo = std::clamp<int64_t>(begin - offset, 0, n);
    return {lo, std::clamp<int64_t>(end - offset, lo, n)};
  }
};

class Optimizer {
 public:
  explicit Optimizer(NamedParameters params);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;
  // Applies one update with learning rate `lr` from the parameters' accumulated gradients, to the
  // elements in `range` only (the rest, gradients and state included, are not read or written).
  // Every update is element by element, so updating the parts of a model separately gives the
  // bits of updating it whole (data-parallel processes each update their share). CUDA parameters
  // are updated whole.
  void step(double lr, ElementRange range = {});
  // Named state tensors ("step", "exp_avg.0.weight", ...), in a fixed order.
  std::vector<std::pair<std::string, Tensor*>> state();
  // The state kept per parameter (moments): for each kind, one tensor per parameter, shaped as it.
  const std::vector<std::vector<Tensor*>>& per_parameter_state() const { return per_parameter_; }
  int64_t steps() const { return step_->data<int64_t>()[0]; }
  const NamedParameters& parameters() const { return params_; }

 protected:
  // One state tensor per parameter, named `<kind>.<parameter name>`.
  std::vector<Tensor*> add_state_per_parameter(const std::string& kind);
  // The step's constants, once per step(`lr`) (`t`: the step count, 1 for the first).
  virtual void begin_step(double lr, int64_t t) = 0;
  // Updates elements [lo, hi) of parameter i (all of them on CUDA).
  virtual void update(size_t i, int64_t lo, int64_t hi) = 0;
  NamedParameters params_;

 private:
  std::deque<std::pair<std::string, Tensor>> state_;
  std::vector<std::vector<Tensor*>> per_parameter_;
  Tensor* step_;
};

struct SgdOptions {
  double momentum = 0.0;      // 0 = plain SGD
  double weight_decay = 0.0;  // L2 coefficient
  bool nesterov = false;
};

class Sgd final : public Optimizer {
 public:
  Sgd(NamedParameters params, SgdOptions options);

 private:
  void begin_step(double lr, int64_t t) override;
  void update(size_t i, int64_t lo, int64_t hi) override;
  SgdOptions opt_;
  std::vector<Tensor*> momentum_;
  float lr_ = 0.0f;
  bool first_ = false;
};

struct AdamOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // L2 coefficient, or with `decoupled` the AdamW shrink rate
  // AdamW: w ← w·(1 − lr·weight_decay) before the step, the gradient left alone. L2 instead passes
  // through Adam's normalisation, which turns even a tiny decay of a weight with little gradient
  // into a full-size step.
  bool decoupled = false;
};

class Adam final : public Optimizer {
 public:
  Adam(NamedParameters params, AdamOptions options);

 private:
  void begin_step(double lr, int64_t t) override;
  void update(size_t i, int64_t lo, int64_t hi) override;
  AdamOptions opt_;
  std::vector<Tensor*> exp_avg_, exp_avg_sq_;
  // The step's constants (PyTorch's, in f32): lr / bias correction 1, √(bias correction 2), the
  // L2 coefficient (0 when decoupled) and AdamW's shrink factor (1 when not).
  float step_size_ = 0.0f, sqrt_bc2_ = 1.0f, wd_ = 0.0f, shrink_ = 1.0f;
};

// Cosine annealing from `base` at step 0 to `min_lr` at `total` (torch's CosineAnnealingLR).
double cosine_lr(double base, int64_t step, int64_t total, double min_lr = 0.0);

}  // namespace xp::nn
