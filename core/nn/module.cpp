#include "core/nn/module.h"

#include <fmt/format.h>

#include <stdexcept>

namespace xp::nn {

std::vector<std::pair<std::string, Parameter*>> Module::parameters() {
  std::vector<std::pair<std::string, Parameter*>> out;
  for (auto& [name, p] : params_) out.emplace_back(name, &p);
  for (auto& [cname, child] : children_)
    for (auto& [name, p] : child->parameters()) out.emplace_back(cname + "." + name, p);
  return out;
}

std::vector<std::pair<std::string, Tensor*>> Module::buffers() {
  std::vector<std::pair<std::string, Tensor*>> out;
  for (auto& [name, b] : buffers_) out.emplace_back(name, &b);
  for (auto& [cname, child] : children_)
    for (auto& [name, b] : child->buffers()) out.emplace_back(cname + "." + name, b);
  return out;
}

void Module::zero_grad() {
  for (auto& [name, p] : parameters()) {
    if (p->grad.device() != tensor::Device::kCPU) {
      p->grad = Tensor::zeros(p->grad.shape(), p->grad.dtype(), p->grad.device());
      continue;
    }
    float* g = p->grad.data<float>();
    std::fill(g, g + p->grad.numel(), 0.0f);
  }
}

void Module::to(tensor::Device device) {
  for (auto& [name, p] : parameters()) {
    p->value = p->value.to(device);
    if (p->grad.defined()) p->grad = p->grad.to(device);
  }
  for (auto& [name, b] : buffers())
    if (b->defined()) *b = b->to(device);
}

int64_t Module::num_parameters() {
  int64_t n = 0;
  for (auto& [name, p] : parameters()) n += p->value.numel();
  return n;
}

Parameter& Module::add_parameter(const std::string& name, const Shape& shape) {
  params_.emplace_back(name, Parameter{Tensor::zeros(shape, tensor::DType::kF32),
                                       Tensor::zeros(shape, tensor::DType::kF32)});
  return params_.back().second;
}

Tensor& Module::add_buffer(const std::string& name, Tensor initial) {
  buffers_.emplace_back(name, std::move(initial));
  return buffers_.back().second;
}

std::string Sequential::describe() const {
  std::string s = "Sequential(";
  for (size_t i = 0; i < size(); ++i) s += (i ? ", " : "") + at(i).describe();
  return s + ")";
}

Tensor Sequential::forward(const Tensor& x, Mode mode) {
  Tensor h = x;
  for (size_t i = 0; i < size(); ++i) h = at(i).forward(h, mode);
  return h;
}

Tensor Sequential::backward(const Tensor& grad_y) {
  Tensor g = grad_y;
  for (size_t i = size(); i-- > 0;) g = at(i).backward(g);
  return g;
}

void Sequential::set_input_grad(bool on) {
  Module::set_input_grad(on);
  if (size() > 0) at(0).set_input_grad(on);
}

void expect_features(const Module& layer, const Tensor& x, int64_t features) {
  if (x.dim() < 2 || x.numel() / x.size(0) != features)
    throw std::invalid_argument(fmt::format("{}: expects [batch, {}] input, got shape {} (the previous layer's output "
                                            "does not chain into this one)",
                                            layer.describe(), features, tensor::shape_str(x.shape())));
}

void expect_device(const Module& layer, const Tensor& x, const Tensor& parameter) {
  if (x.device() != parameter.device())
    throw std::invalid_argument(fmt::format("{}: the input is on {} but the parameters are on {} (move the model with "
                                            "to(Device::k{}))",
                                            layer.describe(), tensor::device_name(x.device()),
                                            tensor::device_name(parameter.device()),
                                            x.device() == tensor::Device::kCUDA ? "CUDA" : "CPU"));
}

void expect_same_shape(const Module& layer, const Tensor& grad_y, const Shape& forward_shape) {
  if (grad_y.shape() != forward_shape)
    throw std::invalid_argument(fmt::format("{}: backward got gradient of shape {} for an output of shape {} (was "
                                            "forward run in train mode just before?)",
                                            layer.describe(), tensor::shape_str(grad_y.shape()),
                                            tensor::shape_str(forward_shape)));
}

}  // namespace xp::nn
