#include "core/nn/optim.h"

#include <cmath>
#include <numbers>

#include "core/nn/cuda/layers.h"

namespace xp::nn {

Optimizer::Optimizer(NamedParameters params) : params_(std::move(params)) {
  state_.emplace_back("step", Tensor::zeros({1}, tensor::DType::kI64));
  step_ = &state_.back().second;
}

std::vector<std::pair<std::string, Tensor*>> Optimizer::state() {
  std::vector<std::pair<std::string, Tensor*>> out;
  for (auto& [name, t] : state_) out.emplace_back(name, &t);
  return out;
}

std::vector<Tensor*> Optimizer::add_state_per_parameter(const std::string& kind) {
  std::vector<Tensor*> out;
  for (auto& [name, p] : params_) {
    state_.emplace_back(kind + "." + name, Tensor::zeros(p->value.shape(), tensor::DType::kF32, p->value.device()));
    out.push_back(&state_.back().second);
  }
  return out;
}

Sgd::Sgd(NamedParameters params, SgdOptions options) : Optimizer(std::move(params)), opt_(options) {
  if (opt_.momentum != 0.0) momentum_ = add_state_per_parameter("momentum_buffer");
}

void Sgd::step(double lr) {
  const bool first = advance() == 1;
  const auto flr = static_cast<float>(lr), wd = static_cast<float>(opt_.weight_decay),
             mu = static_cast<float>(opt_.momentum);
  for (size_t i = 0; i < params_.size(); ++i) {
    Parameter& p = *params_[i].second;
    if (p.value.device() == tensor::Device::kCUDA) {
      cuda::sgd_step(static_cast<float*>(p.value.raw_data()), static_cast<const float*>(p.grad.raw_data()),
                     momentum_.empty() ? nullptr : static_cast<float*>(momentum_[i]->raw_data()), p.value.numel(), flr,
                     wd, mu, first, opt_.nesterov);
      continue;
    }
    float* w = p.value.data<float>();
    const float* g = p.grad.data<float>();
    float* buf = momentum_.empty() ? nullptr : momentum_[i]->data<float>();
    for (int64_t k = 0; k < p.value.numel(); ++k) {
      float d = g[k] + wd * w[k];
      if (buf) {
        buf[k] = first ? d : mu * buf[k] + d;
        d = opt_.nesterov ? d + mu * buf[k] : buf[k];
      }
      w[k] -= flr * d;
    }
  }
}

Adam::Adam(NamedParameters params, AdamOptions options) : Optimizer(std::move(params)), opt_(options) {
  exp_avg_ = add_state_per_parameter("exp_avg");
  exp_avg_sq_ = add_state_per_parameter("exp_avg_sq");
}

void Adam::step(double lr) {
  const auto t = static_cast<double>(advance());
  const double bc1 = 1.0 - std::pow(opt_.beta1, t), bc2 = 1.0 - std::pow(opt_.beta2, t);
  const auto step_size = static_cast<float>(lr / bc1), sqrt_bc2 = static_cast<float>(std::sqrt(bc2));
  const auto b1 = static_cast<float>(opt_.beta1), b2 = static_cast<float>(opt_.beta2),
             eps = static_cast<float>(opt_.eps);
  // L2 adds wd·w to the gradient; AdamW multiplies w by `shrink` first.
  const auto wd = static_cast<float>(opt_.decoupled ? 0.0 : opt_.weight_decay),
             shrink = static_cast<float>(opt_.decoupled ? 1.0 - lr * opt_.weight_decay : 1.0);
  for (size_t i = 0; i < params_.size(); ++i) {
    Parameter& p = *params_[i].second;
    if (p.value.device() == tensor::Device::kCUDA) {
      cuda::adam_step(static_cast<float*>(p.value.raw_data()), static_cast<const float*>(p.grad.raw_data()),
                      static_cast<float*>(exp_avg_[i]->raw_data()), static_cast<float*>(exp_avg_sq_[i]->raw_data()),
                      p.value.numel(), {step_size, sqrt_bc2, b1, b2, eps, wd, shrink});
      continue;
    }
    float* w = p.value.data<float>();
    const float* g = p.grad.data<float>();
    float* m = exp_avg_[i]->data<float>();
    float* v = exp_avg_sq_[i]->data<float>();
    const int64_t n = p.value.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t k = 0; k < n; ++k) {
      const float d = g[k] + wd * w[k];
      m[k] = b1 * m[k] + (1.0f - b1) * d;
      v[k] = b2 * v[k] + (1.0f - b2) * d * d;
      w[k] = w[k] * shrink - step_size * m[k] / (std::sqrt(v[k]) / sqrt_bc2 + eps);
    }
  }
}

double cosine_lr(double base, int64_t step, int64_t total, double min_lr) {
  if (total <= 0) return base;
  const double t = std::min(static_cast<double>(step), static_cast<double>(total)) / static_cast<double>(total);
  return min_lr + 0.5 * (base - min_lr) * (1.0 + std::cos(std::numbers::pi * t));
}

}  // namespace xp::nn
