// Optimizers over a module's parameters, with PyTorch's update rules (so a run here and the same
// run in PyTorch follow the same trajectory up to float rounding), and the cosine schedule.
// Optimizer state is a list of named tensors — moments plus the step count — so it goes into
// the same state dict as the model. Weight decay is L2 added to the gradient (torch.optim.SGD and
// torch.optim.Adam) unless Adam's is decoupled (torch.optim.AdamW).
#pragma once
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "core/nn/module.h"

namespace xp::nn {

using NamedParameters = std::vector<std::pair<std::string, Parameter*>>;

class Optimizer {
 public:
  explicit Optimizer(NamedParameters params);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;
  // Applies one update with learning rate `lr` from the parameters' accumulated gradients.
  virtual void step(double lr) = 0;
  // Named state tensors ("step", "exp_avg.0.weight", ...), in a fixed order.
  std::vector<std::pair<std::string, Tensor*>> state();
  int64_t steps() const { return step_->data<int64_t>()[0]; }

 protected:
  // One state tensor per parameter, named `<kind>.<parameter name>`.
  std::vector<Tensor*> add_state_per_parameter(const std::string& kind);
  int64_t advance() { return ++step_->data<int64_t>()[0]; }
  NamedParameters params_;

 private:
  std::deque<std::pair<std::string, Tensor>> state_;
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
  void step(double lr) override;

 private:
  SgdOptions opt_;
  std::vector<Tensor*> momentum_;
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
  void step(double lr) override;

 private:
  AdamOptions opt_;
  std::vector<Tensor*> exp_avg_, exp_avg_sq_;
};

// Cosine annealing from `base` at step 0 to `min_lr` at `total` (torch's CosineAnnealingLR).
double cosine_lr(double base, int64_t step, int64_t total, double min_lr = 0.0);

}  // namespace xp::nn
