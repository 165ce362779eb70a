#include "compression/optimizer_state.h"

#include <Eigen/Core>
#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include "compression/container.h"

namespace xp::compression {

namespace {

constexpr char kMagic[4] = {'D', 'Q', 'O', 'S'};
constexpr uint16_t kVersion = 1;

// "optim.exp_avg_sq.0.weight" → "optim.exp_avg_sq": moments of one kind share a scale, so
// quantize_like_weights quantizes each kind on its own (its thresholds are per layer type).
std::string kind_of(const std::string& name) {
  const size_t dot = name.find('.', std::strlen("optim."));
  return name.substr(0, dot);
}

// A power of two that brings the tensor's largest magnitude near 2^15: Adam's second moments
// (squared gradients, ~1e-8) would underflow fp16 unscaled, and a zero second moment blows the
// update up. Scaling by a power of two is exact, so only the half rounding remains.
int half_scale_exponent(const float* v, size_t n) {
  float largest = 0.0f;
  for (size_t i = 0; i < n; ++i) largest = std::max(largest, std::fabs(v[i]));
  if (!(largest > 0.0f) || !std::isfinite(largest)) return 0;
  int e = 0;
  std::frexp(largest, &e);  // largest = m·2^e, m in [0.5, 1)
  return 15 - e;
}

ContainerError corrupt(const std::string& what) {
  return ContainerError("optimizer state: " + what + " (corrupt, or from another model): refusing it");
}

}  // namespace

const std::vector<std::string>& optimizer_state_policy_names() {
  static const std::vector<std::string> names{"fp32", "fp16", "quantize_like_weights", "drop"};
  return names;
}

OptimizerStatePolicy optimizer_state_policy(const std::string& name) {
  const auto& names = optimizer_state_policy_names();
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return static_cast<OptimizerStatePolicy>(i);
  throw std::invalid_argument(fmt::format("unknown optimizer_state policy '{}' (fp32, fp16, quantize_like_weights, drop)", name));
}

bool is_optimizer_moment(const std::string& name, const tensor::Tensor& t) {
  return name.rfind("optim.", 0) == 0 && name != "optim.step" && t.dtype() == tensor::DType::kF32;
}

std::vector<std::byte> encode_optimizer_state(const nn::StateDict& trainer_state, OptimizerStatePolicy policy,
                                              const QuantConfig& weights_config) {
  jobs::ByteWriter out;
  for (char c : kMagic) out.put<char>(c);
  out.put<uint16_t>(kVersion);
  out.put<uint8_t>(static_cast<uint8_t>(policy));
  std::map<std::string, nn::StateDict> by_kind;  // insertion order inside a kind is the state's
  for (const auto& [name, t] : trainer_state)
    if (is_optimizer_moment(name, t)) by_kind[kind_of(name)].emplace_back(name, t);
  switch (policy) {
    case OptimizerStatePolicy::kDrop:
      out.put<uint32_t>(0);
      break;
    case OptimizerStatePolicy::kFp32:
    case OptimizerStatePolicy::kFp16: {
      uint32_t n = 0;
      for (const auto& [kind, moments] : by_kind) n += static_cast<uint32_t>(moments.size());
      out.put<uint32_t>(n);
      for (const auto& [kind, moments] : by_kind)
        for (const auto& [name, t] : moments) {
          out.put_string(name);
          out.put_vector(t.shape());
          const float* v = t.data<float>();
          const auto count = static_cast<size_t>(t.numel());
          if (policy == OptimizerStatePolicy::kFp32) {
            out.put_vector(std::vector<float>(v, v + count));
          } else {
            const int exponent = half_scale_exponent(v, count);
            out.put<int32_t>(exponent);
            std::vector<uint16_t> half(count);
            for (size_t i = 0; i < count; ++i)
              half[i] = Eigen::numext::bit_cast<uint16_t>(Eigen::half(std::ldexp(v[i], exponent)));
            out.put_vector(half);
          }
        }
      break;
    }
    case OptimizerStatePolicy::kQuantizeLikeWeights: {
      QuantConfig c = weights_config;
      c.prune_fraction = 0.0;
      out.put<uint32_t>(static_cast<uint32_t>(by_kind.size()));
      for (const auto& [kind, moments] : by_kind) {
        out.put_string(kind);
        ContainerHeader h;
        h.config = c;
        out.put_vector(encode_container(h, quantize(moments, {}, c), nullptr));
      }
      break;
    }
  }
  std::vector<std::byte> bytes = out.take();
  append_crc32(bytes);
  return bytes;
}

nn::StateDict decode_optimizer_state(const std::vector<std::byte>& bytes, nn::StateDict trainer_state) {
  if (bytes.size() < 4 + 2 + 1 + 4 + 4) throw corrupt("truncated");
  if (!crc32_trailer_ok(bytes)) throw corrupt("CRC32 mismatch");
  jobs::ByteReader in(bytes.data(), bytes.size() - 4);
  std::map<std::string, tensor::Tensor*> moments;
  for (auto& [name, t] : trainer_state)
    if (is_optimizer_moment(name, t)) moments[name] = &t;
  std::set<std::string> restored;
  auto put = [&](const std::string& name, const tensor::Shape& shape, const float* values) {
    auto it = moments.find(name);
    if (it == moments.end() || it->second->shape() != shape || !restored.insert(name).second)
      throw corrupt(fmt::format("moment '{}' {} does not fit this trainer state", name, tensor::shape_str(shape)));
    // A fresh tensor: copies of a Tensor share storage, and the caller's state must not change.
    *it->second = tensor::Tensor::empty(shape, tensor::DType::kF32);
    std::memcpy(it->second->raw_data(), values, it->second->nbytes());
  };
  try {
    char magic[4];
    for (char& c : magic) c = in.get<char>();
    if (std::memcmp(magic, kMagic, 4) != 0) throw corrupt("bad magic");
    if (in.get<uint16_t>() != kVersion) throw corrupt("unknown version");
    const auto policy = in.get<uint8_t>();
    const auto n = in.get<uint32_t>();
    switch (policy) {
      case static_cast<uint8_t>(OptimizerStatePolicy::kDrop):
        for (auto& [name, t] : moments) *t = tensor::Tensor::zeros(t->shape(), tensor::DType::kF32);
        return trainer_state;
      case static_cast<uint8_t>(OptimizerStatePolicy::kFp32):
      case static_cast<uint8_t>(OptimizerStatePolicy::kFp16):
        for (uint32_t i = 0; i < n; ++i) {
          const std::string name = in.get_string();
          const auto shape = in.get_vector<int64_t>();
          std::vector<float> values;
          if (policy == static_cast<uint8_t>(OptimizerStatePolicy::kFp32)) {
            values = in.get_vector<float>();
          } else {
            const auto exponent = in.get<int32_t>();
            if (exponent < -300 || exponent > 300) throw corrupt("bad fp16 scale");
            for (uint16_t h : in.get_vector<uint16_t>())
              values.push_back(std::ldexp(static_cast<float>(Eigen::numext::bit_cast<Eigen::half>(h)), -exponent));
          }
          if (static_cast<int64_t>(values.size()) != tensor::numel_of(shape)) throw corrupt(fmt::format("'{}' size mismatch", name));
          put(name, shape, values.data());
        }
        break;
      case static_cast<uint8_t>(OptimizerStatePolicy::kQuantizeLikeWeights):
        for (uint32_t i = 0; i < n; ++i) {
          in.get_string();  // the kind, for a reader of the file
          for (const auto& [name, t] : dequantize(decode_container(in.get_vector<std::byte>(), nullptr)))
            put(name, t.shape(), t.data<float>());
        }
        break;
      default:
        throw corrupt(fmt::format("unknown policy {}", policy));
    }
    if (!in.at_end()) throw corrupt("trailing bytes");
  } catch (const jobs::CheckpointError& e) {
    throw corrupt(e.what());
  }
  if (restored.size() != moments.size()) throw corrupt(fmt::format("{} of {} moments stored", restored.size(), moments.size()));
  return trainer_state;
}

}  // namespace xp::compression
