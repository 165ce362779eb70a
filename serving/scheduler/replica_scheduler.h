// ReplicaScheduler: forms each iteration's batch for one replica (docs/scheduling.md). The same code
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

#include "serving/kv/kv_groups.h"
#include "serving/scheduler/scheduler_config.h"
#include "serving/scheduler/sequence.h"
#include "serving/scheduler/time_model.h"

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
  // `batch` left pipeline stage `stage` (executors report every stage; only stage 0 under
  // sequence pipeline parallelism changes anything: its unfinished prompts become schedulable
  // for their next chunk).
  void on_stage_completed(const Batch& batch, int64_t stage, double now);
  // Ends sequence `id` before its decode_tokens are out — it met an end-of-sequence token or a
  // stop string, or its client left — freeing its KV blocks; it leaves through take_finished()
  // as kFinished. Between steps only (not while a batch holding it is in flight). False if the
  // scheduler does not hold `id` (already finished).
  bool finish_early(uint64_t id, double now);
  // Finished (all tokens out) and ignored (too long) sequences since the last call.
  std::vector<Sequence> take_finished();

  // The iteration-time model for latency-targeted chunking; shared, read-only.
  void set_time_model(std::shared_ptr<const IterationTimeModel> m) { time_model_ = std::move(m); }

  bool has_work() const { return !waiting_.empty() || !running_.empty(); }
  size_t num_waiting() const { return waiting_.size(); }
  size_t num_running() const { return running_.size(); }
  int64_t batches_in_flight() const { return in_flight_; }
  int64_t num_preemptions() const { return preemptions_; }
  const KvGroups& kv() const { return kv_; }
  const SchedulerConfig& config() const { return cfg_; }
  const Sequence* find(uint64_t id) const;
  // What each KV-parallel group runs of `b` (one shape per group, empty where it has nothing): a
  // request's query goes to every group holding its KV so far, each attending to its own shard,
  // their results merged (kvp_merges). Without KV parallelism, {BatchShape::of(b)}.
  std::vector<BatchShape> group_shapes(const Batch& b) const;

 protected:
  ReplicaScheduler(const SchedulerConfig& cfg, int64_t num_kv_blocks, double watermark);

  // Appends this iteration's items to `b` (in any order; schedule() puts prefills first).
  virtual void build(double now, Batch& b) = 0;
  // KV blocks reserved when a sequence is admitted.
  virtual int64_t admission_blocks(const Sequence& s) const { return kv_.blocks_for(s.len()); }
  // Longest sequence admitted; longer ones are ignored (under KV parallelism also those longer
  // than all groups together hold).
  virtual int64_t prompt_limit() const {
    return cfg_.kv_parallel > 1 ? std::min(cfg_.max_model_len, cfg_.kv_parallel * cfg_.max_tokens_per_kvp_group)
                                : cfg_.max_model_len;
  }

  static bool paused(const Sequence* s) { return s->status == SeqStatus::kPaused; }
  // The running list, oldest arrival first (FCFS priority); kept sorted, so this is a copy only.
  std::deque<Sequence*> running_by_priority() const { return {running_.begin(), running_.end()}; }

  // Why waiting_[index] (the head by default) cannot be admitted now (kOk: it can; kIgnored:
  // it is too long and has left the queue).
  enum class Admit { kOk, kNotArrived, kIgnored, kNoMemory, kBatchFull };
  Admit check_admission(double now, int64_t live_after_admit, size_t index = 0);
  // Takes waiting_[index] out of the queue, reserves its blocks, marks it running.
  Sequence* admit(size_t index = 0);

  // One decode for `id`, preempting the lowest-priority sequences of `remaining` (popped
  // from the back) until a slot is free; false if `id` itself had to be preempted.
  bool schedule_decode(Sequence* s, std::deque<Sequence*>& remaining, Batch& b);
  static void add_prefill(const Sequence* s, int64_t chunk, Batch& b) {
    b.items.push_back({s->id(), chunk, true, s->stage_processed()});
  }
  // The longest next chunk of `s`'s prompt: what is left, and under KV parallelism no further than
  // the end of the group its prompt is filling.
  int64_t chunk_limit(const Sequence& s) const;
  // Adds `item` of a sequence held in `groups` (its KV groups in order) to `shapes`.
  void add_to_groups(const BatchItem& item, const std::vector<int32_t>& groups, std::vector<BatchShape>& shapes) const;
  void preempt(Sequence* s);  // recompute: free blocks, back to the front of the waiting queue
  // Orca / FasterTransformer: every paused running sequence decodes (their max-length
  // reservation always has room), and new requests are admitted FCFS with whole prompts.
  void decode_all_reserved(Batch& b);
  void admit_whole_prompts(double now, Batch& b);

  SchedulerConfig cfg_;
  KvGroups kv_;
  std::shared_ptr<const IterationTimeModel> time_model_;
  // Owns every live sequence; the lists below point into it (node addresses are stable).
  std::unordered_map<uint64_t, Sequence> seqs_;
  std::deque<Sequence*> waiting_;
  std::vector<Sequence*> running_;  // admitted and not finished, sorted by (arrival, id)

 private:
  void finish(Sequence* s, SeqStatus status, double now);
  void insert_running(Sequence* s);
  void erase_running(Sequence* s);
  int64_t in_flight_ = 0;
  int64_t preemptions_ = 0;
  uint64_t next_batch_id_ = 0;
  std::vector<Sequence> finished_;
};

}  // namespace xp::serving
