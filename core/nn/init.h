// Parameter initialisers, each a pure function of an RNG stream (so a model's initial weights
// are a function of the run's seed and the stream id the caller picks).
#pragma once
#include "core/runtime/rng.h"
#include "core/tensor/tensor.h"

namespace xp::nn::init {

void uniform(tensor::Tensor& t, runtime::RngStream& rng, double lo, double hi);
void normal(tensor::Tensor& t, runtime::RngStream& rng, double mean, double std);
// 1 with probability p, else 0.
void bernoulli(tensor::Tensor& t, runtime::RngStream& rng, double p);
// +value or -value with equal probability (edge-popup's signed constant).
void signed_constant(tensor::Tensor& t, runtime::RngStream& rng, double value);
void constant(tensor::Tensor& t, double value);

}  // namespace xp::nn::init
