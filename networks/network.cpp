#include "networks/network.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

#include "core/nn/activation.h"
#include "core/nn/linear.h"
#include "core/nn/norm.h"
#include "networks/edge_popup.h"

namespace xp::networks {

void validate(const NetworkSpec& s) {
  if (s.layers.size() < 2) throw std::invalid_argument("network.layers needs at least an input and an output size");
  for (int64_t n : s.layers)
    if (n <= 0) throw std::invalid_argument(fmt::format("network.layers: sizes must be positive, got {}", n));
  if (s.method != "binarized" && s.method != "float_mlp" && s.method != "edge_popup")
    throw std::invalid_argument(fmt::format("network.method '{}' is not binarized, float_mlp or edge_popup", s.method));
  if (s.norm != "hard_invert" && s.norm != "soft_invert" && s.norm != "batch_norm")
    throw std::invalid_argument(fmt::format("network.norm '{}' is not hard_invert, soft_invert or batch_norm", s.norm));
  if (!(s.init_p >= 0.0 && s.init_p <= 1.0))
    throw std::invalid_argument(fmt::format("network.init_p must be a probability, got {}", s.init_p));
  if (!(s.keep > 0.0 && s.keep <= 1.0))
    throw std::invalid_argument(fmt::format("network.keep must be in (0, 1], got {}", s.keep));
}

Network::Network(NetworkSpec spec, uint64_t seed) : spec_(std::move(spec)), module_(std::make_unique<nn::Sequential>()) {
  validate(spec_);
  const size_t depth = spec_.layers.size() - 1;
  for (size_t l = 0; l < depth; ++l) {
    const int64_t in = spec_.layers[l], out = spec_.layers[l + 1];
    const bool last = l + 1 == depth;
    runtime::RngStream rng(seed, 100 + 2 * l), rng2(seed, 101 + 2 * l);
    if (spec_.method == "binarized") {
      auto& layer = module_->add(std::make_unique<BinaryLinear>(in, out));
      layer.reset(rng, spec_.init_p);
      binary_.push_back(&layer);
      weighted_.push_back(&layer);
      module_->add(std::make_unique<nn::Tanh>());
      if (spec_.norm == "hard_invert") norms_.push_back(&module_->add(std::make_unique<nn::HardInvert>()));
      else if (spec_.norm == "soft_invert")
        norms_.push_back(&module_->add(std::make_unique<nn::SoftInvert>(spec_.soft_invert_init)));
      else
        norms_.push_back(&module_->add(std::make_unique<nn::BatchNorm>(
            out, nn::BatchNormOptions{.eps = spec_.bn_eps, .momentum = spec_.bn_momentum})));
    } else if (spec_.method == "float_mlp") {
      auto& layer = module_->add(std::make_unique<nn::Linear>(in, out));
      layer.reset(rng);
      weighted_.push_back(&layer);
      if (!last) module_->add(std::make_unique<nn::ReLU>());
    } else {
      auto& layer = module_->add(std::make_unique<EdgePopupLinear>(in, out, spec_.keep));
      layer.reset(rng, rng2, std::sqrt(2.0));  // ReLU gain
      weighted_.push_back(&layer);
      if (!last) {
        module_->add(std::make_unique<nn::BatchNorm>(out, nn::BatchNormOptions{.affine = false}));
        module_->add(std::make_unique<nn::ReLU>());
      }
    }
  }
  module_->add(std::make_unique<nn::LogSoftmax>());
}

void Network::after_step() {
  for (BinaryLinear* l : binary_) l->clip();
}

void Network::set_on(float on) {
  for (BinaryLinear* l : binary_) l->set_on(on);
}

std::vector<Network::LayerWeights> Network::weight_activity() {
  std::vector<LayerWeights> out;
  for (size_t l = 0; l < weighted_.size(); ++l) {
    LayerWeights lw;
    lw.name = fmt::format("layer{}", l + 1);
    nn::Tensor w;
    if (auto* b = dynamic_cast<BinaryLinear*>(weighted_[l])) {
      const nn::Tensor& latent = b->latent().value;
      lw.total = latent.numel();
      for (int64_t i = 0; i < latent.numel(); ++i) lw.active += is_active(latent.data<float>()[i]);
      out.push_back(lw);
      continue;
    }
    if (auto* ep = dynamic_cast<EdgePopupLinear*>(weighted_[l])) w = ep->effective_weights();
    else w = static_cast<nn::Linear*>(weighted_[l])->weight().value;
    lw.total = w.numel();
    const float* p = w.data<float>();
    for (int64_t i = 0; i < w.numel(); ++i) lw.active += p[i] != 0.0f;
    out.push_back(lw);
  }
  return out;
}

}  // namespace xp::networks
