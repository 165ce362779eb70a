#include "core/nn/loss.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

#include "core/nn/eigen_view.h"

namespace xp::nn {

namespace {
void check(const tensor::Tensor& x, std::span<const int32_t> labels, const char* what) {
  if (x.dim() != 2 || static_cast<size_t>(x.size(0)) != labels.size())
    throw std::invalid_argument(fmt::format("{}: expects [batch, classes] input and one label per row, got {} and {} "
                                            "labels", what, tensor::shape_str(x.shape()), labels.size()));
  for (size_t i = 0; i < labels.size(); ++i)
    if (labels[i] < 0 || labels[i] >= x.size(1))
      throw std::invalid_argument(fmt::format("{}: label {} of row {} is outside [0, {})", what, labels[i], i, x.size(1)));
}

// A batch's scores are a few thousand floats: losses of CUDA tensors are computed on the host and
// their gradient handed back on the device.
bool on_cuda(const tensor::Tensor& t) { return t.device() == tensor::Device::kCUDA; }
LossResult gradient_to_cuda(LossResult r) {
  r.grad = r.grad.to(tensor::Device::kCUDA);
  return r;
}
}  // namespace

std::vector<int32_t> argmax_rows(const tensor::Tensor& scores) {
  if (on_cuda(scores)) return argmax_rows(scores.to(tensor::Device::kCPU));
  auto m = detail::as_matrix(scores, scores.size(0));
  std::vector<int32_t> out(static_cast<size_t>(m.rows()));
  for (int64_t r = 0; r < m.rows(); ++r) {
    Eigen::Index at = 0;
    m.row(r).maxCoeff(&at);
    out[static_cast<size_t>(r)] = static_cast<int32_t>(at);
  }
  return out;
}

LossResult cross_entropy(const tensor::Tensor& logits, std::span<const int32_t> labels) {
  if (on_cuda(logits)) return gradient_to_cuda(cross_entropy(logits.to(tensor::Device::kCPU), labels));
  check(logits, labels, "cross_entropy");
  const int64_t n = logits.size(0);
  LossResult r;
  r.grad = detail::empty_like(logits);
  auto x = detail::as_matrix(logits, n);
  auto g = detail::as_matrix(r.grad, n);
  const float inv_n = 1.0f / static_cast<float>(n);
  for (int64_t i = 0; i < n; ++i) {
    const float mx = x.row(i).maxCoeff();
    g.row(i) = (x.row(i).array() - mx).exp().matrix();
    const float z = g.row(i).sum();
    const int32_t y = labels[static_cast<size_t>(i)];
    r.loss -= static_cast<double>(x(i, y) - mx) - std::log(static_cast<double>(z));
    g.row(i) *= inv_n / z;
    g(i, y) -= inv_n;
  }
  r.loss /= static_cast<double>(n);
  auto pred = argmax_rows(logits);
  for (int64_t i = 0; i < n; ++i) r.correct += pred[static_cast<size_t>(i)] == labels[static_cast<size_t>(i)];
  return r;
}

LossResult nll_loss(const tensor::Tensor& log_probs, std::span<const int32_t> labels) {
  if (on_cuda(log_probs)) return gradient_to_cuda(nll_loss(log_probs.to(tensor::Device::kCPU), labels));
  check(log_probs, labels, "nll_loss");
  const int64_t n = log_probs.size(0);
  LossResult r;
  r.grad = tensor::Tensor::zeros(log_probs.shape(), tensor::DType::kF32);
  auto x = detail::as_matrix(log_probs, n);
  auto g = detail::as_matrix(r.grad, n);
  for (int64_t i = 0; i < n; ++i) {
    const int32_t y = labels[static_cast<size_t>(i)];
    r.loss -= x(i, y);
    g(i, y) = -1.0f / static_cast<float>(n);
  }
  r.loss /= static_cast<double>(n);
  auto pred = argmax_rows(log_probs);
  for (int64_t i = 0; i < n; ++i) r.correct += pred[static_cast<size_t>(i)] == labels[static_cast<size_t>(i)];
  return r;
}

}  // namespace xp::nn
