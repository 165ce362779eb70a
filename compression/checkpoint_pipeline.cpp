#include "compression/checkpoint_pipeline.h"

#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>

#include "core/runtime/files.h"

namespace xp::compression {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

}  // namespace

CheckpointPipeline::CheckpointPipeline(CheckpointCodec& codec, CheckpointCodec::Quality quality, Options options,
                                       std::function<void(const FinishedCheckpoint&)> on_finished)
    : codec_(codec), quality_(std::move(quality)), options_(std::move(options)), on_finished_(std::move(on_finished)) {}

CheckpointPipeline::~CheckpointPipeline() {
  for (auto& f : pending_) f.wait();
}

std::vector<std::byte> CheckpointPipeline::codec_state() const {
  if (!can_save()) throw std::logic_error("CheckpointPipeline: the codec's state is asked for while older checkpoints are in flight");
  if (!pending_.empty()) return *state_before_;
  jobs::ByteWriter out;
  codec_.save_state(out);
  return out.take();
}

void CheckpointPipeline::submit(std::shared_ptr<const CheckpointSnapshot> snap, const CheckpointChain& last) {
  while (!pending_.empty() && (pending_.size() >= options_.max_in_flight || !compressing())) finish_oldest();
  // While the codec is idle its state is the one before this checkpoint.
  state_before_ = pending_.empty() ? std::optional(codec_state()) : std::nullopt;
  newest_ = snap;
  std::shared_future<FinishedCheckpoint> previous = pending_.empty() ? std::shared_future<FinishedCheckpoint>() : pending_.back();
  auto work = [this, snap, previous, chain = previous.valid() ? CheckpointChain{} : last]() mutable {
    return compress(*snap, previous.valid() ? previous.get().stored.chain : std::move(chain));
  };
  if (options_.overlap) {
    pending_.push_back(std::async(std::launch::async, [work = std::move(work)]() mutable {
      // Training comes first: the worker (and the OpenMP threads it starts, which inherit
      // this) takes the cores training leaves idle. Failing to lower it only costs speed.
      (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 19);
      return work();
    }).share());
  } else {
    std::promise<FinishedCheckpoint> done;
    done.set_value(work());
    pending_.push_back(done.get_future().share());
    finish_all();
  }
}

bool CheckpointPipeline::compressing() const {
  return !pending_.empty() && pending_.front().wait_for(std::chrono::seconds(0)) != std::future_status::ready;
}

void CheckpointPipeline::finish_oldest() {
  const FinishedCheckpoint& done = pending_.front().get();  // rethrows what the worker threw
  on_finished_(done);
  pending_.pop_front();
}

void CheckpointPipeline::finish_all() {
  while (!pending_.empty()) finish_oldest();
}

// Runs on a worker when overlapping, so it touches only the codec (its delta parent: one worker
// at a time uses it, each after the one before; the caller only once nothing is in flight) and
// the thread-safe quality. Writes both files atomically: a crash mid-write leaves the previous
// ones intact.
FinishedCheckpoint CheckpointPipeline::compress(const CheckpointSnapshot& snap, CheckpointChain chain) const {
  FinishedCheckpoint out;
  auto t0 = Clock::now();
  EncodedCheckpoint e = codec_.encode(static_cast<uint64_t>(snap.step), snap.weights, snap.ema);
  if (e.self_contained) chain.clear();
  chain.push_back(e.bytes);
  out.details = e.details;
  out.levels = e.levels;
  out.details.bytes = std::move(e.bytes);
  out.details.raw_bytes = fp32_bytes(snap.weights);
  out.stored.optimizer = encode_optimizer_state(snap.trainer_state, options_.optimizer_state, out.details.config);
  out.encode_s = seconds_since(t0);
  for (const auto& [file, bytes] : {std::pair{fmt::format("step-{:08d}.bin", snap.step), &out.details.bytes},
                                    std::pair{fmt::format("step-{:08d}.optim.bin", snap.step), &out.stored.optimizer}}) {
    if (options_.write_files)
      runtime::write_file_atomic(options_.dir / file, std::string(reinterpret_cast<const char*>(bytes->data()), bytes->size()));
  }
  t0 = Clock::now();
  nn::StateDict restored = codec_.decode(chain);
  out.decode_s = seconds_since(t0);
  if (out.details.quality_live == 0.0) {  // baselines: measure what the search measured for DynaQuant
    out.details.quality_live = quality_(snap.weights);
    out.details.quality_restored = quality_(restored);
  }
  for (const auto& [name, t] : snap.trainer_state)
    if (is_optimizer_moment(name, t)) out.optimizer_raw += static_cast<int64_t>(t.nbytes());
  out.stored.step = snap.step;
  out.stored.chain = std::move(chain);
  out.stored.trainer_state = snap.trainer_state;  // tensors share their storage: no copy
  return out;
}

}  // namespace xp::compression
