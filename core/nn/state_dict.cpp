#include "core/nn/state_dict.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <cstring>
#include <map>

namespace xp::nn {

namespace {
std::vector<std::pair<std::string, Tensor*>> live_tensors(Module& model, Optimizer* optimizer) {
  std::vector<std::pair<std::string, Tensor*>> out;
  for (auto& [name, p] : model.parameters()) out.emplace_back("model." + name, &p->value);
  for (auto& [name, b] : model.buffers()) out.emplace_back("model." + name, b);
  if (optimizer)
    for (auto& [name, t] : optimizer->state()) out.emplace_back("optim." + name, t);
  return out;
}
}  // namespace

StateDict state_dict(Module& model, Optimizer* optimizer) {
  StateDict sd;
  for (auto& [name, t] : live_tensors(model, optimizer))
    sd.emplace_back(name, t->device() == tensor::Device::kCPU ? t->clone() : t->to(tensor::Device::kCPU));
  return sd;
}

void load_state_dict(const StateDict& sd, Module& model, Optimizer* optimizer) {
  std::map<std::string, const Tensor*> given;
  for (const auto& [name, t] : sd) given[name] = &t;
  auto live = live_tensors(model, optimizer);
  for (const auto& [name, t] : live) {
    auto it = given.find(name);
    if (it == given.end())
      throw StateDictError(fmt::format("state dict has no tensor '{}' (a checkpoint of a different model or optimizer?)", name));
    if (it->second->shape() != t->shape() || it->second->dtype() != t->dtype())
      throw StateDictError(fmt::format("tensor '{}' is {} {} in the state dict but {} {} in the model (a checkpoint of "
                                       "a different model?)", name, tensor::dtype_name(it->second->dtype()),
                                       tensor::shape_str(it->second->shape()), tensor::dtype_name(t->dtype()),
                                       tensor::shape_str(t->shape())));
  }
  if (given.size() != live.size())
    for (const auto& [name, t] : sd) {
      bool known = false;
      for (const auto& l : live) known = known || l.first == name;
      if (!known) throw StateDictError(fmt::format("state dict has a tensor '{}' this model does not (a checkpoint of a "
                                                   "different model?)", name));
    }
  for (auto& [name, t] : live) {
    Tensor source = given[name]->contiguous();
    if (t->device() == tensor::Device::kCPU) std::memcpy(t->raw_data(), source.raw_data(), t->nbytes());
    else *t = source.to(t->device());  // a model moved to the GPU (Module::to) loads there
  }
}

void write_state_dict(jobs::ByteWriter& out, const StateDict& sd) {
  out.put<uint64_t>(sd.size());
  for (const auto& [name, t] : sd) {
    Tensor c = t.contiguous();
    out.put_string(name);
    out.put<uint8_t>(static_cast<uint8_t>(c.dtype()));
    out.put_vector(c.shape());
    const auto* p = static_cast<const std::byte*>(c.raw_data());
    out.put_vector(std::vector<std::byte>(p, p + c.nbytes()));
  }
}

std::string fingerprint(const StateDict& sd) {
  jobs::ByteWriter out;
  write_state_dict(out, sd);
  return fmt::format("{:016x}", XXH3_64bits(out.bytes().data(), out.bytes().size()));
}

StateDict read_state_dict(jobs::ByteReader& in) {
  const auto n = in.get<uint64_t>();
  if (n > in.remaining()) throw jobs::CheckpointError("state dict: implausible tensor count (truncated or corrupt payload)");
  StateDict sd;
  for (uint64_t i = 0; i < n; ++i) {
    std::string name = in.get_string();
    auto dtype = in.get<uint8_t>();
    if (dtype > static_cast<uint8_t>(tensor::DType::kU8))
      throw jobs::CheckpointError(fmt::format("state dict: tensor '{}' has unknown dtype code {}", name, dtype));
    auto shape = in.get_vector<int64_t>();
    for (int64_t s : shape)
      if (s < 0) throw jobs::CheckpointError(fmt::format("state dict: tensor '{}' has a negative dimension", name));
    auto bytes = in.get_vector<std::byte>();
    Tensor t = Tensor::empty(shape, static_cast<tensor::DType>(dtype));
    if (bytes.size() != t.nbytes())
      throw jobs::CheckpointError(fmt::format("state dict: tensor '{}' holds {} bytes, its shape {} needs {}", name,
                                              bytes.size(), tensor::shape_str(shape), t.nbytes()));
    std::memcpy(t.raw_data(), bytes.data(), bytes.size());
    sd.emplace_back(std::move(name), std::move(t));
  }
  return sd;
}

}  // namespace xp::nn
