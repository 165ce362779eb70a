// Parameter-free layers: element-wise activations, flatten, dropout and log-softmax.
#pragma once
#include "core/nn/module.h"
#include "core/runtime/rng.h"

namespace xp::nn {

class ReLU final : public Module {
 public:
  std::string describe() const override { return "ReLU"; }
  Tensor forward(const Tensor& x, Mode mode) override;
  Tensor backward(const Tensor& grad_y) override;

 private:
  Tensor y_;
};

class Tanh final : public Module {
 public:
  std::string describe() const override { return "Tanh"; }
  Tensor forward(const Tensor& x, Mode mode) override;
  Tensor backward(const Tensor& grad_y) override;

 private:
  Tensor y_;
};

// The sign-like activation of binarized networks: y = 1 if x ≥ 0 else 0. Its gradient is the
// straight-through estimator of BinaryConnect: passed unchanged where |x| ≤ 1, zero elsewhere.
class Step final : public Module {
 public:
  std::string describe() const override { return "Step"; }
  Tensor forward(const Tensor& x, Mode mode) override;
  Tensor backward(const Tensor& grad_y) override;

 private:
  Tensor x_;
};

// [batch, ...] -> [batch, prod(...)].
class Flatten final : public Module {
 public:
  std::string describe() const override { return "Flatten"; }
  Tensor forward(const Tensor& x, Mode mode) override;
  Tensor backward(const Tensor& grad_y) override;

 private:
  Shape shape_;
};

// Inverted dropout: in training each element is zeroed with probability p and the rest scaled
// by 1/(1-p); identity in evaluation. The masks come from a counter-based stream whose position
// is a buffer ("rng_position"), so a restored state dict continues with the same masks.
class Dropout final : public Module {
 public:
  Dropout(double p, runtime::RngStream rng);
  std::string describe() const override;
  Tensor forward(const Tensor& x, Mode mode) override;
  Tensor backward(const Tensor& grad_y) override;

 private:
  Tensor times_mask(const Tensor& t);  // t · mask_, on t's device

  double p_;
  runtime::RngStream rng_;
  Tensor* position_;
  Tensor mask_;
};

// Row-wise log(softmax(x)) of [batch, classes]; pair it with nll_loss().
class LogSoftmax final : public Module {
 public:
  std::string describe() const override { return "LogSoftmax"; }
  Tensor forward(const Tensor& x, Mode mode) override;
  Tensor backward(const Tensor& grad_y) override;

 private:
  Tensor y_;
};

}  // namespace xp::nn
