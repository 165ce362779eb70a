#include "core/nn/init.h"

namespace xp::nn::init {

template <class F>
static void fill(tensor::Tensor& t, F draw) {
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = static_cast<float>(draw());
}

void uniform(tensor::Tensor& t, runtime::RngStream& rng, double lo, double hi) {
  fill(t, [&] { return lo + (hi - lo) * rng.uniform(); });
}
void normal(tensor::Tensor& t, runtime::RngStream& rng, double mean, double std) {
  fill(t, [&] { return mean + std * rng.normal(); });
}
void bernoulli(tensor::Tensor& t, runtime::RngStream& rng, double p) {
  fill(t, [&] { return rng.uniform() < p ? 1.0 : 0.0; });
}
void signed_constant(tensor::Tensor& t, runtime::RngStream& rng, double value) {
  fill(t, [&] { return (rng.next_u32() & 1u) ? value : -value; });
}
void constant(tensor::Tensor& t, double value) {
  fill(t, [&] { return value; });
}

}  // namespace xp::nn::init
