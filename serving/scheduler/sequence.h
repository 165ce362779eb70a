// The shared request model (docs/scheduling.md), used by every scheduler and by both executors.
// A Request is what arrives; a Sequence is its serving state; a Batch is one iteration's work.
// Recompute preemption folds the tokens emitted so far into the prompt of the next
// attempt, so prompt_len() grows while decode_tokens() (what the user asked for) does not.
// Plain values; the scheduler that owns a Sequence is the only one that changes it.
#pragma once
#include <cstdint>
#include <vector>

namespace xp::serving {

struct Request {
  uint64_t id = 0;
  double arrival_s = 0;        // when it reaches the server
  int64_t prompt_tokens = 0;   // P
  int64_t decode_tokens = 0;   // D: with ignore_eos exactly this many tokens are produced
};

enum class SeqStatus { kWaiting, kRunning, kPaused, kFinished, kIgnored };

class Sequence {
 public:
  explicit Sequence(const Request& r) : req_(r) {}

  const Request& request() const { return req_; }
  uint64_t id() const { return req_.id; }
  double arrival() const { return req_.arrival_s; }

  // Prompt of the current attempt: the original prompt plus every token emitted before the
  // latest recompute preemption.
  int64_t prompt_len() const { return req_.prompt_tokens + emitted_at_restart_; }
  // Tokens in the sequence now (what KV blocks are reserved for).
  int64_t len() const { return prompt_len() + (emitted_ - emitted_at_restart_); }
  int64_t emitted() const { return emitted_; }
  int64_t remaining_decodes() const { return req_.decode_tokens - emitted_; }
  int64_t prompt_processed() const { return prompt_processed_; }
  int64_t stage_processed() const { return stage_processed_; }
  bool prefill_done() const { return prompt_processed_ >= prompt_len(); }
  bool stage_prefill_done() const { return stage_processed_ >= prompt_len(); }
  int64_t remaining_stage_prefill() const { return prompt_len() - stage_processed_; }

  SeqStatus status = SeqStatus::kWaiting;
  int batches_in_flight = 0;  // scheduled and not through the last stage (SPP: while PAUSED too)
  int num_restarts = 0;
  double first_scheduled_s = -1;  // first time any of its work was scheduled
  double prefill_done_s = -1;     // first time its prompt completed (TTFT instant)
  double completed_s = -1;
  std::vector<double> token_times;  // emit time of every output token, in order

  // Called when an iteration holding this sequence has passed the whole model. With sequence
  // pipeline parallelism the stage counter moved already, when the chunk left stage 0.
  void complete_prefill_chunk(int64_t chunk, bool sequence_pipeline = false) {
    prompt_processed_ += chunk;
    if (!sequence_pipeline) stage_processed_ = prompt_processed_;
  }
  // SPP: a chunk has left pipeline stage 0.
  void complete_stage_chunk(int64_t chunk) { stage_processed_ += chunk; }
  void emit_token(double now) {
    ++emitted_;
    token_times.push_back(now);
  }
  // Recompute preemption: KV is dropped; the next attempt re-prefills prompt + outputs.
  void reset_for_recompute() {
    emitted_at_restart_ = emitted_;
    prompt_processed_ = stage_processed_ = 0;
    ++num_restarts;
    status = SeqStatus::kWaiting;
  }

 private:
  Request req_;
  int64_t emitted_ = 0;
  int64_t emitted_at_restart_ = 0;
  int64_t prompt_processed_ = 0;  // after the whole model
  int64_t stage_processed_ = 0;   // after pipeline stage 0 (equal to the above without SPP)
};

struct BatchItem {
  uint64_t seq_id = 0;
  int64_t num_tokens = 0;  // prefill chunk length, or 1 for a decode
  bool is_prefill = false;
  int64_t context = 0;     // tokens already in the KV cache before this item
};

struct Batch {
  uint64_t id = 0;
  double scheduled_s = 0;
  std::vector<BatchItem> items;  // prefills first, then decodes

  bool empty() const { return items.empty(); }
  int64_t num_prefill_tokens() const;
  int64_t num_decodes() const;
  int64_t num_tokens() const { return num_prefill_tokens() + num_decodes(); }
};

}  // namespace xp::serving
