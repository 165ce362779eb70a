// How a DynaQuant checkpoint keeps the optimizer's moments (docs/dynaquant.md: the paper
// does not say, so it is a knob). The moments are the f32 tensors of a trainer state whose name
// starts with "optim." (Adam's exp_avg / exp_avg_sq, SGD's momentum_buffer), except the step
// count; everything else in a trainer state (step, loop position, RNG streams) is small and kept
// exactly by the caller.
//   fp32                   stored as they are
//   fp16                   IEEE half (round to nearest even) of the moment scaled per tensor by a
//                          power of two that puts its largest magnitude near 2^15, so Adam's tiny
//                          second moments keep half's relative precision instead of underflowing
//   quantize_like_weights  the weights' quantizer with the configuration the search chose for the
//                          weights, but nothing pruned: a moment of 0 where Adam's second moment
//                          was not would blow its update up
//   drop                   nothing stored; the moments restart from zero on a restore
// The encoding is "DQOS", a version, the policy, then per moment its name, shape and payload,
// and a CRC32 trailer: a flipped byte or a truncation is refused.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "compression/quantizer.h"

namespace xp::compression {

enum class OptimizerStatePolicy : uint8_t { kFp32 = 0, kFp16 = 1, kQuantizeLikeWeights = 2, kDrop = 3 };

const std::vector<std::string>& optimizer_state_policy_names();  // fp32, fp16, quantize_like_weights, drop
OptimizerStatePolicy optimizer_state_policy(const std::string& name);

// True for the tensors of a trainer state the policy applies to.
bool is_optimizer_moment(const std::string& name, const tensor::Tensor& t);

// The moments of `trainer_state` as the policy stores them (`weights_config` for
// quantize_like_weights).
std::vector<std::byte> encode_optimizer_state(const nn::StateDict& trainer_state, OptimizerStatePolicy policy,
                                              const QuantConfig& weights_config);

// `trainer_state` with its moments replaced by the stored ones (zeros for drop). Throws
// ContainerError when the bytes are corrupt or hold moments this state does not have.
nn::StateDict decode_optimizer_state(const std::vector<std::byte>& bytes, nn::StateDict trainer_state);

}  // namespace xp::compression
