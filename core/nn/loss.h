// Classification losses, averaged over the batch, returning the gradient of the mean loss with
// respect to their input (so a training step is forward, loss, backward(loss.grad)).
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "core/tensor/tensor.h"

namespace xp::nn {

struct LossResult {
  double loss = 0.0;     // mean over the batch
  tensor::Tensor grad;   // d loss / d input, same shape as the input
  int64_t correct = 0;   // rows whose argmax equals the label
};

// Softmax cross-entropy on raw logits [batch, classes].
LossResult cross_entropy(const tensor::Tensor& logits, std::span<const int32_t> labels);
// Negative log-likelihood on log-probabilities [batch, classes] (after LogSoftmax).
LossResult nll_loss(const tensor::Tensor& log_probs, std::span<const int32_t> labels);
// Index of the largest entry of each row (the first on ties).
std::vector<int32_t> argmax_rows(const tensor::Tensor& scores);

}  // namespace xp::nn
