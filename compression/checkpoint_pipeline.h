// Compressing checkpoints beside training, as CheckFreq pipelines its persist phase
// (docs/dynaquant.md): a checkpoint is a snapshot (copies of the weights, trainer state and
// gradient EMA) that a background worker at the lowest priority encodes with the codec, writes
// atomically (weights and optimizer blob) and decodes again to check, while training goes on.
// Deltas form a chain, so the checkpoints in flight (up to `max_in_flight`) are compressed one
// after another, in order; each finished one is handed to `on_finished` on the caller's thread.
// With `overlap` off every checkpoint is compressed at once, on the caller's thread: the same
// bytes. One training loop drives it; not thread-safe.
#pragma once
#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "compression/codec.h"
#include "compression/optimizer_state.h"

namespace xp::compression {

using CheckpointChain = std::vector<std::vector<std::byte>>;  // a base's encoding and its deltas'

// What one checkpoint's compression works on: copies, shared read-only with a save taken while
// it is in flight.
struct CheckpointSnapshot {
  int64_t step = 0;
  nn::StateDict weights, trainer_state;
  std::map<std::string, std::vector<float>> ema;
};

// What a restore needs: the compressed weights (a chain), the optimizer's moments as the policy
// stores them, and the rest of the trainer state exactly.
struct StoredCheckpoint {
  int64_t step = 0;
  CheckpointChain chain;
  std::vector<std::byte> optimizer;
  nn::StateDict trainer_state;
};

struct FinishedCheckpoint {
  StoredCheckpoint stored;   // on disk already
  CompressedCheckpoint details;  // the codec's search details, bytes and raw size
  int levels = -1;
  int64_t optimizer_raw = 0;  // the optimizer moments' fp32 bytes
  double encode_s = 0.0, decode_s = 0.0;
};

class CheckpointPipeline {
 public:
  struct Options {
    std::filesystem::path dir;  // step-N.bin and step-N.optim.bin go here
    OptimizerStatePolicy optimizer_state{};
    bool overlap = true;
    size_t max_in_flight = 4;
    bool write_files = true;  // false: compress and check only (a process that does not write the run)
  };
  // `codec` outlives the pipeline; `quality` (thread-safe) measures the live and decoded weights
  // of codecs whose encode does not (the baselines).
  CheckpointPipeline(CheckpointCodec& codec, CheckpointCodec::Quality quality, Options options,
                     std::function<void(const FinishedCheckpoint&)> on_finished);
  ~CheckpointPipeline();  // waits for the workers, discarding their results

  // Compresses `snap` as the delta after the newest checkpoint in flight, or after `last` (the
  // newest finished one) when none is; first finishes what is done, and waits while
  // max_in_flight are in flight.
  void submit(std::shared_ptr<const CheckpointSnapshot> snap, const CheckpointChain& last);
  void finish_all();
  bool compressing() const;  // a worker is still at it
  bool empty() const { return pending_.empty(); }

  // A save can record one checkpoint in flight, the one just taken, with the codec's state from
  // before it: while older ones are in flight, it cannot.
  bool can_save() const { return pending_.empty() || (pending_.size() == 1 && state_before_.has_value()); }
  // For a save (can_save()): the checkpoint in flight (null: none) and the codec's state to resume
  // with (before that checkpoint; the current one when none is in flight).
  const CheckpointSnapshot* in_flight() const { return pending_.empty() ? nullptr : newest_.get(); }
  std::vector<std::byte> codec_state() const;

 private:
  void finish_oldest();
  FinishedCheckpoint compress(const CheckpointSnapshot& snap, CheckpointChain chain) const;

  CheckpointCodec& codec_;
  CheckpointCodec::Quality quality_;
  Options options_;
  std::function<void(const FinishedCheckpoint&)> on_finished_;
  std::deque<std::shared_future<FinishedCheckpoint>> pending_;  // oldest first
  std::shared_ptr<const CheckpointSnapshot> newest_;  // the newest submitted
  std::optional<std::vector<std::byte>> state_before_;  // the codec's, before newest_, if it was idle
};

}  // namespace xp::compression
