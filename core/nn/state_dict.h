// State dicts: everything a training run needs to continue exactly — model parameters and
// buffers (running statistics, dropout RNG positions) and optimizer state (moments, step count)
// — as one ordered list of named tensors. The checkpoint store saves it through ByteWriter; the
// DynaQuant compressor works on the same list.
#pragma once
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "core/jobs/bytes.h"
#include "core/nn/module.h"
#include "core/nn/optim.h"

namespace xp::nn {

// Names are prefixed "model." or "optim." ("model.0.weight", "optim.exp_avg.0.weight").
using StateDict = std::vector<std::pair<std::string, Tensor>>;

class StateDictError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Deep copies of the current values, on the CPU (so a model on the GPU saves the same bytes).
StateDict state_dict(Module& model, Optimizer* optimizer = nullptr);
// Copies `sd` into the model (and optimizer), each tensor onto the device it lives on. All names and shapes are checked first and the
// first missing, unexpected or mis-shaped tensor is named in a StateDictError ("a checkpoint of
// a different model?"); on error nothing is changed.
void load_state_dict(const StateDict& sd, Module& model, Optimizer* optimizer = nullptr);

void write_state_dict(jobs::ByteWriter& out, const StateDict& sd);
// XXH3-64 of the serialised state dict, as 16 hex digits: equal fingerprints mean bit-identical
// names, shapes and values (how resumed runs prove they ended where uninterrupted ones did).
std::string fingerprint(const StateDict& sd);
StateDict read_state_dict(jobs::ByteReader& in);  // throws jobs::CheckpointError when malformed

}  // namespace xp::nn
