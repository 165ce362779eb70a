// Checkpoint-compression baselines in the same framework (docs/dynaquant.md), each a pair of
// whole-state-dict encode/decode functions over the same named fp32 tensors DynaQuant sees:
//   zstd          lossless zstd (level 3) of the fp32 bytes
//   uniform8_zstd per-tensor uniform 8-bit quantization (min/max range), then zstd
// Decoders check sizes and names and throw ContainerError on anything malformed.
#pragma once
#include <cstddef>
#include <vector>

#include "compression/container.h"

namespace xp::compression {

std::vector<std::byte> encode_zstd(const nn::StateDict& weights, int level = 3);
nn::StateDict decode_zstd(const std::vector<std::byte>& bytes);

std::vector<std::byte> encode_uniform8_zstd(const nn::StateDict& weights, int level = 3);
nn::StateDict decode_uniform8_zstd(const std::vector<std::byte>& bytes);

}  // namespace xp::compression
