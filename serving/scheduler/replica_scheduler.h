// ReplicaScheduler: forms each iteration's batch for one replica (serving.md §3). The same code
// drives the simulator (time from the predictor) and the engine (time from the wall clock); it
// never asks which. Protocol per iteration:
//
//   Batch b = s.schedule(now);            // empty: nothing to do, or PP micro-batches all in flight
//   ... run b (all pipeline stages) ...
//   StepResult r = s.on_step_completed(b, now_after);   // tokens emitted, sequences finished
//
// At most `pipeline_stages` batches are in flight. Sequences inside an in-flight batch are
// RUNNING and no policy schedules them again until it completes. Finished and ignored
// sequences leave the scheduler through StepResult / take_finished(), so memory stays bounded
// by the live requests. Not thread-safe.
#pragma once
#include <deque>
#include <memory>
#include <unordered_map>
#include <vector>

#include "serving/kv/block_manager.h"
#include "serving/scheduler/scheduler_config.h"
#include "serving/scheduler/sequence.h"

namespace xp::serving {

struct StepResult {
  std::vector<uint64_t> emitted;  // sequences that produced a token this step, in batch order
};

class ReplicaScheduler {
 public:
  static std::unique_ptr<ReplicaScheduler> create(const SchedulerConfig& cfg, int64_t num_kv_blocks);
  virtual ~ReplicaScheduler() = default;

  void add_request(const Request& r);  // requests must be added in arrival order
  Batch schedule(double now);
  StepResult on_step_completed(const Batch& batch, double now);
  // Finished (all tokens out) and ignored (too long) sequences since the last call.
  std::vector<Sequence> take_finished();

  bool has_work() const { return !waiting_.empty() || !running_.empty(); }
  size_t num_waiting() const { return waiting_.size(); }
  size_t num_running() const { return running_.size(); }
  int64_t batches_in_flight() const { return in_flight_; }
  int64_t num_preemptions() const { return preemptions_; }
  const BlockManager& blocks() const { return blocks_; }
  const SchedulerConfig& config() const { return cfg_; }
  const Sequence* find(uint64_t id) const;

 protected:
  ReplicaScheduler(const SchedulerConfig& cfg, int64_t num_kv_blocks, double watermark);

  // Appends this iteration's items to `b` (in any order; schedule() puts prefills first).
  virtual void build(double now, Batch& b) = 0;
  // KV blocks reserved when a sequence is admitted.
  virtual int64_t admission_blocks(const Sequence& s) const { return blocks_.blocks_for(s.len()); }
  // Longest sequence admitted; longer ones are ignored.
  virtual int64_t prompt_limit() const { return cfg_.max_model_len; }

  Sequence& seq(uint64_t id) { return seqs_.at(id); }
  bool paused(uint64_t id) const { return seqs_.at(id).status == SeqStatus::kPaused; }
  // The running list, oldest arrival first (FCFS priority).
  std::vector<uint64_t> running_by_priority() const;

  // Why the head of the waiting queue cannot be admitted now (kOk: it can).
  enum class Admit { kOk, kNotArrived, kIgnored, kNoMemory, kBatchFull };
  Admit check_admission(double now, int64_t live_after_admit);
  uint64_t admit_front(double now);  // pops the waiting head, reserves its blocks, marks it running

  // §2.4: one decode for `id`, preempting the lowest-priority sequences of `remaining` (popped
  // from the back) until a slot is free; false if `id` itself had to be preempted.
  bool schedule_decode(uint64_t id, std::deque<uint64_t>& remaining, Batch& b);
  void add_prefill(uint64_t id, int64_t chunk, Batch& b);
  void preempt(uint64_t id);  // recompute: free blocks, back to the front of the waiting queue

  SchedulerConfig cfg_;
  BlockManager blocks_;
  std::unordered_map<uint64_t, Sequence> seqs_;
  std::deque<uint64_t> waiting_;
  std::vector<uint64_t> running_;  // admitted and not finished, in admission order

 private:
  void finish(uint64_t id, SeqStatus status, double now);
  int64_t in_flight_ = 0;
  int64_t preemptions_ = 0;
  uint64_t next_batch_id_ = 0;
  std::vector<Sequence> finished_;
};

}  // namespace xp::serving
