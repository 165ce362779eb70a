#include "core/nn/optim.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numbers>
#include <stdexcept>
#include <type_traits>

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
  per_parameter_.push_back(out);
  return out;
}

void Optimizer::step(double lr, ElementRange range) {
  begin_step(lr, ++step_->data<int64_t>()[0]);
  int64_t offset = 0;
  for (size_t i = 0; i < params_.size(); ++i) {
    const int64_t n = params_[i].second->value.numel();
    const auto [lo, hi] = range.within(offset, n);
    offset += n;
    if (lo >= hi) continue;
    if (params_[i].second->value.device() == tensor::Device::kCUDA && (lo != 0 || hi != n))
      throw std::invalid_argument(fmt::format("optimizer: CUDA parameter '{}' is updated whole, not elements {}..{}",
                                              params_[i].first, lo, hi));
    update(i, lo, hi);
  }
}

Sgd::Sgd(NamedParameters params, SgdOptions options) : Optimizer(std::move(params)), opt_(options) {
  if (opt_.momentum != 0.0) momentum_ = add_state_per_parameter("momentum_buffer");
}

void Sgd::begin_step(double lr, int64_t t) {
  lr_ = static_cast<float>(lr);
  first_ = t == 1;
}

void Sgd::update(size_t i, int64_t lo, int64_t hi) {
  const auto wd = static_cast<float>(opt_.weight_decay), mu = static_cast<float>(opt_.momentum);
  Parameter& p = *params_[i].second;
  if (p.value.device() == tensor::Device::kCUDA) {
    cuda::sgd_step(static_cast<float*>(p.value.raw_data()), static_cast<const float*>(p.grad.raw_data()),
                   momentum_.empty() ? nullptr : static_cast<float*>(momentum_[i]->raw_data()), p.value.numel(), lr_, wd, mu,
                   first_, opt_.nesterov);
    return;
  }
  float* w = p.value.data<float>();
  const float* g = p.grad.data<float>();
  float* buf = momentum_.empty() ? nullptr : momentum_[i]->data<float>();
  const float lr = lr_;
  // One branch-free loop per case (the flags are the same for every element), so each vectorizes.
  auto with_momentum = [&](auto first, auto nesterov) {
#pragma omp simd
    for (int64_t k = lo; k < hi; ++k) {
      const float d = g[k] + wd * w[k];
      if constexpr (first) buf[k] = d;
      else buf[k] = mu * buf[k] + d;
      if constexpr (nesterov) w[k] -= lr * (d + mu * buf[k]);
      else w[k] -= lr * buf[k];
    }
  };
  using std::bool_constant;
  if (!buf) {
#pragma omp simd
    for (int64_t k = lo; k < hi; ++k) w[k] -= lr * (g[k] + wd * w[k]);
  } else if (first_) {
    opt_.nesterov ? with_momentum(bool_constant<true>{}, bool_constant<true>{})
                  : with_momentum(bool_constant<true>{}, bool_constant<false>{});
  } else {
    opt_.nesterov ? with_momentum(bool_constant<false>{}, bool_constant<true>{})
                  : with_momentum(bool_constant<false>{}, bool_constant<false>{});
  }
}

Adam::Adam(NamedParameters params, AdamOptions options) : Optimizer(std::move(params)), opt_(options) {
  exp_avg_ = add_state_per_parameter("exp_avg");
  exp_avg_sq_ = add_state_per_parameter("exp_avg_sq");
}

void Adam::begin_step(double lr, int64_t t) {
  const double bc1 = 1.0 - std::pow(opt_.beta1, static_cast<double>(t)), bc2 = 1.0 - std::pow(opt_.beta2, static_cast<double>(t));
  step_size_ = static_cast<float>(lr / bc1);
  sqrt_bc2_ = static_cast<float>(std::sqrt(bc2));
  // L2 adds wd·w to the gradient; AdamW multiplies w by `shrink` first.
  wd_ = static_cast<float>(opt_.decoupled ? 0.0 : opt_.weight_decay);
  shrink_ = static_cast<float>(opt_.decoupled ? 1.0 - lr * opt_.weight_decay : 1.0);
}

void Adam::update(size_t i, int64_t lo, int64_t hi) {
  const auto b1 = static_cast<float>(opt_.beta1), b2 = static_cast<float>(opt_.beta2), eps = static_cast<float>(opt_.eps);
  const float step_size = step_size_, sqrt_bc2 = sqrt_bc2_, wd = wd_, shrink = shrink_;
  Parameter& p = *params_[i].second;
  if (p.value.device() == tensor::Device::kCUDA) {
    cuda::adam_step(static_cast<float*>(p.value.raw_data()), static_cast<const float*>(p.grad.raw_data()),
                    static_cast<float*>(exp_avg_[i]->raw_data()), static_cast<float*>(exp_avg_sq_[i]->raw_data()),
                    p.value.numel(), {step_size, sqrt_bc2, b1, b2, eps, wd, shrink});
    return;
  }
  float* w = p.value.data<float>();
  const float* g = p.grad.data<float>();
  float* m = exp_avg_[i]->data<float>();
  float* v = exp_avg_sq_[i]->data<float>();
#pragma omp parallel for simd schedule(static) if (hi - lo > 65536)
  for (int64_t k = lo; k < hi; ++k) {
    const float d = g[k] + wd * w[k];
    m[k] = b1 * m[k] + (1.0f - b1) * d;
    v[k] = b2 * v[k] + (1.0f - b2) * d * d;
    w[k] = w[k] * shrink - step_size * m[k] / (std::sqrt(v[k]) / sqrt_bc2 + eps);
  }
}

double cosine_lr(double base, int64_t step, int64_t total, double min_lr) {
  if (total <= 0) return base;
  const double t = std::min(static_cast<double>(step), static_cast<double>(total)) / static_cast<double>(total);
  return min_lr + 0.5 * (base - min_lr) * (1.0 + std::cos(std::numbers::pi * t));
}

}  // namespace xp::nn
