#include "networks/edge_popup.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "core/nn/eigen_view.h"
#include "core/nn/init.h"
#include "core/nn/linear.h"

namespace xp::networks {

EdgePopupLinear::EdgePopupLinear(int64_t in, int64_t out, double keep) : in_(in), out_(out), keep_(keep) {
  if (!(keep > 0.0 && keep <= 1.0))
    throw std::invalid_argument(fmt::format("EdgePopupLinear: keep (fraction of weights kept) must be in (0, 1], got {}", keep));
  scores_ = &add_parameter("scores", {out, in});
  weight_ = &add_buffer("weight", nn::Tensor::zeros({out, in}, tensor::DType::kF32));
}

void EdgePopupLinear::reset(runtime::RngStream& weights, runtime::RngStream& scores, double gain) {
  const double fan_in = static_cast<double>(in_);
  nn::init::signed_constant(*weight_, weights, gain / std::sqrt(fan_in));
  nn::init::uniform(scores_->value, scores, -1.0 / std::sqrt(fan_in), 1.0 / std::sqrt(fan_in));
}

nn::Tensor EdgePopupLinear::effective_weights() const {
  const int64_t n = weight_->numel();
  const auto k = std::max<int64_t>(1, static_cast<int64_t>(std::llround(keep_ * static_cast<double>(n))));
  const float* s = scores_->value.data<float>();
  std::vector<float> mag(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) mag[static_cast<size_t>(i)] = std::fabs(s[i]);
  std::nth_element(mag.begin(), mag.begin() + (n - k), mag.end());
  const float threshold = mag[static_cast<size_t>(n - k)];
  nn::Tensor eff = nn::Tensor::empty(weight_->shape(), tensor::DType::kF32);
  const float* w = weight_->data<float>();
  float* e = eff.data<float>();
  for (int64_t i = 0; i < n; ++i) e[i] = std::fabs(s[i]) >= threshold ? w[i] : 0.0f;
  return eff;
}

std::string EdgePopupLinear::describe() const { return fmt::format("EdgePopupLinear({}->{}, keep={})", in_, out_, keep_); }

nn::Tensor EdgePopupLinear::forward(const nn::Tensor& x, nn::Mode mode) {
  nn::expect_features(*this, x, in_);
  nn::Tensor x2 = x.reshape({x.size(0), in_});
  nn::Tensor eff = effective_weights();
  if (mode == nn::Mode::kTrain) {
    x_ = x2;
    effective_ = eff;
  }
  return nn::linear_forward(x2, eff, nn::Tensor());
}

nn::Tensor EdgePopupLinear::backward(const nn::Tensor& grad_y) {
  nn::expect_same_shape(*this, grad_y, {x_.size(0), out_});
  nn::Tensor grad_eff = nn::Tensor::zeros(weight_->shape(), tensor::DType::kF32);
  nn::Tensor gx = nn::linear_backward(x_, effective_, grad_y, grad_eff, nn::Tensor(), input_grad());
  // Straight through the top-k of |score|: dL/dscore = dL/dw_eff · w · sign(score), for every
  // score (hidden-networks ranks scores.abs(), so the gradient passes the abs).
  auto s = nn::detail::as_vector(scores_->value).array();
  nn::detail::as_vector(scores_->grad).array() +=
      nn::detail::as_vector(grad_eff).array() * nn::detail::as_vector(*weight_).array() * s.sign();
  return gx;
}

}  // namespace xp::networks
