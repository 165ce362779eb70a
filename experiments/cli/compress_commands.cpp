// `exp compress` / `exp decompress`: DynaQuant one-shot mode for checkpoints people already have
// (docs/dynaquant.md, issue: "also work on a standalone safetensors file"): every float tensor is
// quantized with one fixed configuration into a base container; decompress writes fp32
// safetensors back. Both write atomically, so a failure leaves no partial output.
#include <fmt/format.h>

#include "compression/compressor.h"
#include "core/runtime/files.h"
#include "experiments/cli/commands.h"
#include "experiments/experiment.h"
#include "serving/model/safetensors.h"

namespace xp::cli {

int compress_command(const CompressOptions& o) {
  auto ckpt = serving::SafetensorsCheckpoint::open(o.input);
  nn::StateDict weights;
  uint64_t stored_bytes = 0;
  for (const std::string& name : ckpt.names()) {
    const auto& e = ckpt.entry(name);
    if (e.dtype != "F32" && e.dtype != "F16" && e.dtype != "BF16") {
      fmt::print(stderr, "error: {}: tensor '{}' is {}; only float tensors can be compressed\n", o.input, name, e.dtype);
      return 2;
    }
    stored_bytes += e.nbytes;
    weights.emplace_back(name, ckpt.load(name, tensor::DType::kF32));
  }
  compression::ContainerHeader h;
  h.config.bins = o.bins;
  h.config.embedding_bins = std::max(o.bins, 16);
  h.config.prune_fraction = o.prune_fraction;
  h.config.protect_fraction = o.protect_fraction;
  auto bytes = compression::encode_container(h, compression::quantize(weights, {}, h.config), nullptr);
  try {
    runtime::write_file_atomic(o.output, std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  } catch (const runtime::IoError& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  experiments::print_rows({{"tensors", std::to_string(weights.size())},
               {"input bytes", std::to_string(stored_bytes)},
               {"output bytes", std::to_string(bytes.size())},
               {"ratio", fmt::format("{:.2f}x ({:.2f}x against fp32)", static_cast<double>(stored_bytes) / bytes.size(),
                                     static_cast<double>(compression::fp32_bytes(weights)) / bytes.size())},
               {"output", o.output}});
  return 0;
}

int decompress_command(const CompressOptions& o) {
  std::string s;
  try {
    s = runtime::read_file(o.input);
  } catch (const runtime::IoError& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  std::vector<std::byte> bytes(reinterpret_cast<const std::byte*>(s.data()), reinterpret_cast<const std::byte*>(s.data()) + s.size());
  std::map<std::string, tensor::Tensor> tensors;
  try {
    compression::ContainerHeader h = compression::read_container_header(bytes);
    if (h.parent_step >= 0) {
      fmt::print(stderr, "error: {} is a delta against step {}; decompress a training run's chain with its experiment\n",
                 o.input, h.parent_step);
      return 2;
    }
    for (auto& [name, t] : compression::dequantize(compression::decode_container(bytes, nullptr))) tensors[name] = t;
  } catch (const std::runtime_error& e) {  // corrupt, truncated or of another version: name the file
    fmt::print(stderr, "error: {}: {}\n", o.input, e.what());
    return 1;
  }
  serving::write_safetensors(o.output, tensors, {{"format", "pt"}, {"source", "exp decompress"}});
  experiments::print_rows({{"tensors", std::to_string(tensors.size())}, {"output", o.output}});
  return 0;
}

}  // namespace xp::cli
