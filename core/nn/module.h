// core/nn: a small explicit-backward layer library (docs/architecture.md, in the style of llm.c). A
// Module owns named parameters (value + accumulated gradient), named buffers (running
// statistics, RNG positions) and named children; forward() caches what backward() needs, and
// backward() adds parameter gradients into `grad` and returns the gradient of its input.
// Activations are contiguous f32 tensors with the batch as the first dimension, on the CPU or,
// for the layers with CUDA versions (Module::to), on the GPU.
//
// Names follow PyTorch ("0.weight", "fc1.bias"), so a state dict reads like one. Modules are
// not thread-safe, with one exception every layer keeps: forward() in Mode::kEval only reads the
// module (what backward() needs is cached in Mode::kTrain alone), so several threads may evaluate
// one model at once (networks::evaluate does). A layer may use OpenMP threads inside one call.
#pragma once
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor/tensor.h"

namespace xp::nn {

using tensor::Shape;
using tensor::Tensor;

enum class Mode { kTrain, kEval };

struct Parameter {
  Tensor value;
  Tensor grad;  // same shape; zeroed by zero_grad(), accumulated by backward()
};

class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // A short type name for error messages ("Linear(784->1024)").
  virtual std::string describe() const = 0;
  virtual Tensor forward(const Tensor& x, Mode mode) = 0;
  // Needs the forward() just before it to have run in Mode::kTrain.
  virtual Tensor backward(const Tensor& grad_y) = 0;
  // Off for a layer whose input is data, so nobody reads its input's gradient: the layers that
  // can (the linear and convolution layers, on the CPU) then leave that product out and
  // backward() returns an undefined tensor. A Sequential hands it to its first layer.
  virtual void set_input_grad(bool on) { input_grad_ = on; }
  bool input_grad() const { return input_grad_; }

  // Recursive, prefixed with the child names, in registration order.
  std::vector<std::pair<std::string, Parameter*>> parameters();
  std::vector<std::pair<std::string, Tensor*>> buffers();
  void zero_grad();
  // Moves every parameter (value and gradient) and buffer to `device`. Every layer then runs there
  // (cuBLAS, cuDNN, core/nn/cuda's kernels) on inputs on that device, and optimizers made after
  // the move keep their moments there; losses of device scores are computed on the host.
  void to(tensor::Device device);
  int64_t num_parameters();

 protected:
  Parameter& add_parameter(const std::string& name, const Shape& shape);
  Tensor& add_buffer(const std::string& name, Tensor initial);
  template <class M>
  M& add_child(const std::string& name, std::unique_ptr<M> child) {
    M& ref = *child;
    children_.emplace_back(name, std::move(child));
    return ref;
  }
  const std::vector<std::pair<std::string, std::unique_ptr<Module>>>& children() const { return children_; }

 private:
  bool input_grad_ = true;
  // deques keep element addresses stable as entries are added.
  std::deque<std::pair<std::string, Parameter>> params_;
  std::deque<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::unique_ptr<Module>>> children_;
};

// Layers applied in order; children are named "0", "1", ... .
class Sequential final : public Module {
 public:
  Sequential() = default;
  template <class M>
  M& add(std::unique_ptr<M> layer) {
    return add_child(std::to_string(children().size()), std::move(layer));
  }
  size_t size() const { return children().size(); }
  Module& at(size_t i) const { return *children()[i].second; }
  std::string describe() const override;
  Tensor forward(const Tensor& x, Mode mode) override;
  Tensor backward(const Tensor& grad_y) override;
  // To the first layer (call it once the layers are added).
  void set_input_grad(bool on) override;
};

// Shape checks shared by the layers: throws std::invalid_argument naming the layer.
void expect_features(const Module& layer, const Tensor& x, int64_t features);
void expect_same_shape(const Module& layer, const Tensor& grad_y, const Shape& forward_shape);
// The input and the layer's parameters must be on one device.
void expect_device(const Module& layer, const Tensor& x, const Tensor& parameter);

}  // namespace xp::nn
