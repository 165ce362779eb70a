#include "networks/network.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "core/nn/activation.h"
#include "core/nn/conv.h"
#include "core/nn/cuda/layers.h"
#include "core/nn/linear.h"
#include "core/nn/norm.h"
#include "core/nn/state_dict.h"
#include "core/runtime/files.h"
#include "networks/edge_popup.h"

namespace xp::networks {

void validate(const NetworkSpec& s) {
  if (s.layers.size() < 2) throw std::invalid_argument("network.layers needs at least an input and an output size");
  for (int64_t n : s.layers)
    if (n <= 0) throw std::invalid_argument(fmt::format("network.layers: sizes must be positive, got {}", n));
  if (s.method != "binarized" && s.method != "float_mlp" && s.method != "edge_popup" && s.method != "lenet")
    throw std::invalid_argument(
        fmt::format("network.method '{}' is not binarized, float_mlp, edge_popup or lenet", s.method));
  if (s.method == "lenet" && s.layers.front() != 784)
    throw std::invalid_argument("network.method=lenet takes 28x28 single-channel images (network.layers must start with 784)");
  if (s.norm != "hard_invert" && s.norm != "soft_invert" && s.norm != "batch_norm" && s.norm != "neg_batch_norm")
    throw std::invalid_argument(
        fmt::format("network.norm '{}' is not hard_invert, soft_invert, batch_norm or neg_batch_norm", s.norm));
  if (!(s.on > 0.0)) throw std::invalid_argument(fmt::format("network.on must be positive, got {}", s.on));
  if (!(s.init_p >= 0.0 && s.init_p <= 1.0))
    throw std::invalid_argument(fmt::format("network.init_p must be a probability, got {}", s.init_p));
  if (!(s.keep > 0.0 && s.keep <= 1.0))
    throw std::invalid_argument(fmt::format("network.keep must be in (0, 1], got {}", s.keep));
}

namespace {
// LeNet-5 for 28x28 single-channel images (61,706 parameters): the small CNN of the DynaQuant
// plan, so checkpoints have a convolution layer type.
void build_lenet(nn::Sequential& m, int64_t classes, uint64_t seed, std::vector<nn::Module*>& weighted) {
  runtime::RngStream rng(seed, 100);
  auto conv = [&](int64_t in, int64_t out, int64_t pad) {
    auto& c = m.add(std::make_unique<nn::Conv2d>(in, out, nn::Conv2dOptions{.kernel = 5, .padding = pad}));
    c.reset(rng);
    weighted.push_back(&c);
    m.add(std::make_unique<nn::ReLU>());
    m.add(std::make_unique<nn::Pool2d>(nn::PoolKind::kMax, 2));
  };
  conv(1, 6, 2);   // 28x28 -> 14x14
  conv(6, 16, 0);  // 10x10 -> 5x5
  m.add(std::make_unique<nn::Flatten>());
  const int64_t sizes[] = {16 * 5 * 5, 120, 84, classes};
  for (int l = 0; l < 3; ++l) {
    auto& fc = m.add(std::make_unique<nn::Linear>(sizes[l], sizes[l + 1]));
    fc.reset(rng);
    weighted.push_back(&fc);
    if (l < 2) m.add(std::make_unique<nn::ReLU>());
  }
}
}  // namespace

Network::Network(NetworkSpec spec, uint64_t seed) : spec_(std::move(spec)), module_(std::make_unique<nn::Sequential>()) {
  validate(spec_);
  if (spec_.method == "lenet") {
    build_lenet(*module_, spec_.layers.back(), seed, weighted_);
  } else {
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
        else {
          auto& bn = module_->add(
              std::make_unique<nn::BatchNorm>(out, nn::BatchNormOptions{.eps = spec_.bn_eps, .momentum = spec_.bn_momentum}));
          norms_.push_back(&bn);
          if (spec_.norm == "neg_batch_norm") {
            // An inverting threshold per unit with a learned threshold: NOR where it falls between
            // fan-in counts 0 and 1 (issue: the negative-scale norm).
            std::fill_n(bn.weight()->value.data<float>(), out, -1.0f);
            non_positive_scale_.push_back(&bn);
          }
        }
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
  }
  module_->add(std::make_unique<nn::LogSoftmax>());
  module_->set_input_grad(false);  // the input is data
  set_on(static_cast<float>(spec_.on));
}

tensor::Device Network::device() {
  auto params = module_->parameters();
  return params.empty() ? tensor::Device::kCPU : params.front().second->value.device();
}

void Network::after_step() {
  for (BinaryLinear* l : binary_) l->clip();
  for (nn::BatchNorm* bn : non_positive_scale_) {
    nn::Tensor& g = bn->weight()->value;
    if (g.device() == tensor::Device::kCUDA) {
      nn::cuda::clamp(static_cast<float*>(g.raw_data()), std::numeric_limits<float>::lowest(), 0.0f, g.numel());
      continue;
    }
    float* p = g.data<float>();
    for (int64_t i = 0; i < g.numel(); ++i) p[i] = std::min(p[i], 0.0f);
  }
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
    else if (auto* conv = dynamic_cast<nn::Conv2d*>(weighted_[l])) w = conv->weight().value;
    else w = static_cast<nn::Linear*>(weighted_[l])->weight().value;
    lw.total = w.numel();
    const float* p = w.data<float>();
    for (int64_t i = 0; i < w.numel(); ++i) lw.active += p[i] != 0.0f;
    out.push_back(lw);
  }
  return out;
}

void save_model(Network& net, const std::filesystem::path& path) {
  const tensor::Device device = net.device();
  if (device != tensor::Device::kCPU) net.module().to(tensor::Device::kCPU);
  jobs::ByteWriter out;
  nn::write_state_dict(out, nn::state_dict(net.module()));
  if (device != tensor::Device::kCPU) net.module().to(device);
  const auto& b = out.bytes();
  runtime::write_file_atomic(path, std::string(reinterpret_cast<const char*>(b.data()), b.size()));
}

void load_model(Network& net, const std::filesystem::path& path) {
  const std::string content = runtime::read_file(path);
  try {
    jobs::ByteReader in(reinterpret_cast<const std::byte*>(content.data()), content.size());
    nn::load_state_dict(nn::read_state_dict(in), net.module());
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("{}: not a saved model of this network ({})", path.string(), e.what()));
  }
}

}  // namespace xp::networks
