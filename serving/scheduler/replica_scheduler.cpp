#include "serving/scheduler/replica_scheduler.h"

#include <algorithm>

#include "core/runtime/check.h"
#include "serving/scheduler/policies.h"

namespace xp::serving {

int64_t Batch::num_prefill_tokens() const {
  int64_t n = 0;
  for (const auto& it : items)
    if (it.is_prefill) n += it.num_tokens;
  return n;
}

int64_t Batch::num_decodes() const {
  int64_t n = 0;
  for (const auto& it : items) n += it.is_prefill ? 0 : 1;
  return n;
}

std::unique_ptr<ReplicaScheduler> ReplicaScheduler::create(const SchedulerConfig& cfg, int64_t num_kv_blocks) {
  const SchedulerPolicy* p = find_scheduler_policy(cfg.type);
  EXP_CHECK(p, "unknown scheduler type '{}'", cfg.type);
  return p->make(cfg, num_kv_blocks);
}

ReplicaScheduler::ReplicaScheduler(const SchedulerConfig& cfg, int64_t num_kv_blocks, double watermark)
    : cfg_(cfg), kv_(cfg.kv_parallel, num_kv_blocks, cfg.block_size, watermark, cfg.max_tokens_per_kvp_group) {}

void ReplicaScheduler::add_request(const Request& r) {
  EXP_CHECK(seqs_.count(r.id) == 0, "request {} added twice", r.id);
  auto [it, inserted] = seqs_.emplace(r.id, Sequence(r));
  waiting_.push_back(&it->second);
}

const Sequence* ReplicaScheduler::find(uint64_t id) const {
  auto it = seqs_.find(id);
  return it == seqs_.end() ? nullptr : &it->second;
}

namespace {
bool higher_priority(const Sequence* a, const Sequence* b) {
  return a->arrival() != b->arrival() ? a->arrival() < b->arrival() : a->id() < b->id();
}
}  // namespace

void ReplicaScheduler::insert_running(Sequence* s) {
  running_.insert(std::upper_bound(running_.begin(), running_.end(), s, higher_priority), s);
}

void ReplicaScheduler::erase_running(Sequence* s) {
  auto it = std::lower_bound(running_.begin(), running_.end(), s, higher_priority);
  if (it != running_.end() && *it == s) running_.erase(it);
}

Batch ReplicaScheduler::schedule(double now) {
  Batch b;
  if (in_flight_ >= cfg_.pipeline_stages) return b;
  build(now, b);
  if (b.empty()) return b;
  // Flattened layout: prefill chunks first, then decodes.
  std::stable_partition(b.items.begin(), b.items.end(), [](const BatchItem& i) { return i.is_prefill; });
  b.id = next_batch_id_++;
  b.scheduled_s = now;
  for (const auto& it : b.items) {
    Sequence& s = seqs_.at(it.seq_id);
    s.status = SeqStatus::kRunning;
    ++s.batches_in_flight;
    if (s.first_scheduled_s < 0) s.first_scheduled_s = now;
  }
  ++in_flight_;
  return b;
}

void ReplicaScheduler::on_stage_completed(const Batch& b, int64_t stage, double /*now*/) {
  if (!cfg_.sequence_pipeline_parallel || stage != 0) return;
  // Sarathi-serve's SPP state machine: the chunk's tokens count as stage-processed, and a
  // prompt with more to prefill is PAUSED, i.e. schedulable for its next chunk at once.
  for (const auto& it : b.items) {
    if (!it.is_prefill) continue;
    Sequence& s = seqs_.at(it.seq_id);
    s.complete_stage_chunk(it.num_tokens);
    if (!s.stage_prefill_done()) s.status = SeqStatus::kPaused;
  }
}

StepResult ReplicaScheduler::on_step_completed(const Batch& b, double now) {
  StepResult r;
  --in_flight_;
  const bool spp = cfg_.sequence_pipeline_parallel;
  for (const auto& it : b.items) {
    Sequence& s = seqs_.at(it.seq_id);
    --s.batches_in_flight;
    if (it.is_prefill) {
      kv_.on_prefill_progress(s.id(), s.prompt_processed(), s.prompt_processed() + it.num_tokens);
      s.complete_prefill_chunk(it.num_tokens, spp);
      // The sample after a non-final chunk is discarded; the final chunk yields a token.
      // Under SPP a prompt's status is stage 0's business until its last chunk is through: it is
      // PAUSED already, or RUNNING with a later chunk, or waiting for the whole prefill.
      if (!s.prefill_done()) {
        if (!spp) s.status = SeqStatus::kPaused;
        continue;
      }
      if (s.prefill_done_s < 0) s.prefill_done_s = now;
    }
    s.emit_token(now);
    r.emitted.push_back(s.id());
    if (s.remaining_decodes() <= 0) finish(&s, SeqStatus::kFinished, now);
    else s.status = SeqStatus::kPaused;
  }
  return r;
}

void ReplicaScheduler::finish(Sequence* s, SeqStatus status, double now) {
  kv_.free(s->id());
  erase_running(s);
  auto node = seqs_.extract(s->id());
  node.mapped().status = status;
  node.mapped().completed_s = now;
  finished_.push_back(std::move(node.mapped()));
}

bool ReplicaScheduler::finish_early(uint64_t id, double now) {
  auto it = seqs_.find(id);
  if (it == seqs_.end()) return false;
  Sequence* s = &it->second;
  EXP_CHECK(s->batches_in_flight == 0, "request {} finished early while a batch holding it is in flight", id);
  auto w = std::find(waiting_.begin(), waiting_.end(), s);
  if (w != waiting_.end()) waiting_.erase(w);
  finish(s, SeqStatus::kFinished, now);
  return true;
}

std::vector<Sequence> ReplicaScheduler::take_finished() { return std::exchange(finished_, {}); }

ReplicaScheduler::Admit ReplicaScheduler::check_admission(double now, int64_t live_after_admit, size_t index) {
  Sequence* candidate = waiting_[index];
  const Sequence& s = *candidate;
  if (s.arrival() > now) return Admit::kNotArrived;
  if (s.len() > prompt_limit()) {
    waiting_.erase(waiting_.begin() + static_cast<std::ptrdiff_t>(index));
    finish(candidate, SeqStatus::kIgnored, now);
    return Admit::kIgnored;
  }
  if (!kv_.can_allocate(admission_blocks(s))) return Admit::kNoMemory;
  if (live_after_admit > cfg_.max_num_seqs) return Admit::kBatchFull;
  return Admit::kOk;
}

Sequence* ReplicaScheduler::admit(size_t index) {
  Sequence* s = waiting_[index];
  waiting_.erase(waiting_.begin() + static_cast<std::ptrdiff_t>(index));
  kv_.allocate(s->id(), admission_blocks(*s), s->prompt_len());
  s->status = SeqStatus::kPaused;
  insert_running(s);
  return s;
}

void ReplicaScheduler::preempt(Sequence* s) {
  kv_.free(s->id());
  erase_running(s);
  s->reset_for_recompute();
  waiting_.push_front(s);
  ++preemptions_;
}

void ReplicaScheduler::decode_all_reserved(Batch& b) {
  for (Sequence* s : running_) {
    if (!paused(s)) continue;
    kv_.append_slot(s->id(), s->len());  // within the max-length reservation
    b.items.push_back({s->id(), 1, false, s->len() - 1});
  }
}

void ReplicaScheduler::admit_whole_prompts(double now, Batch& b) {
  while (!waiting_.empty()) {
    Admit a = check_admission(now, static_cast<int64_t>(running_.size()) + 1);
    if (a == Admit::kIgnored) continue;
    if (a != Admit::kOk) break;
    Sequence* s = admit();
    add_prefill(s, s->prompt_len(), b);
  }
}

bool ReplicaScheduler::schedule_decode(Sequence* s, std::deque<Sequence*>& remaining, Batch& b) {
  auto slot_free = [&] {
    if (kv_.can_append_slot(s->id())) return true;
    // Without the reference quirk, a sequence whose last block still has room needs no new one.
    return !cfg_.quirks.append_needs_free_block && kv_.has_room(s->id(), s->len());
  };
  while (!slot_free()) {
    if (!remaining.empty()) {
      Sequence* victim = remaining.back();  // lowest priority: the most recent arrival
      remaining.pop_back();
      // A sequence inside an in-flight micro-batch (PP) cannot give its blocks back mid-step
      // (under SPP one may be PAUSED for its next chunk while earlier ones are in flight).
      if (victim->status != SeqStatus::kRunning && victim->batches_in_flight == 0) preempt(victim);
    } else {
      preempt(s);
      return false;
    }
  }
  kv_.append_slot(s->id(), s->len());
  b.items.push_back({s->id(), 1, false, s->len() - 1});
  return true;
}

int64_t ReplicaScheduler::chunk_limit(const Sequence& s) const {
  const int64_t left = s.remaining_stage_prefill();
  if (cfg_.kv_parallel == 1) return left;
  const int64_t m = cfg_.max_tokens_per_kvp_group;
  return std::min(left, m - s.stage_processed() % m);
}

void ReplicaScheduler::add_to_groups(const BatchItem& it, const std::vector<int32_t>& groups,
                                     std::vector<BatchShape>& shapes) const {
  const auto n = static_cast<int64_t>(groups.size());
  const int64_t m = kv_.tokens_per_group();
  // While prefilling, the groups up to the one being filled; after it, all of them.
  const int64_t active = n <= 1 ? 1 : it.is_prefill ? std::min(n, it.context / m + 1) : n;
  for (int64_t i = 0; i < active; ++i) {
    BatchShape& g = shapes[groups.empty() ? 0 : static_cast<size_t>(groups[static_cast<size_t>(i)])];
    const int64_t local = i + 1 < active ? m : it.context - (active - 1) * m;
    if (it.is_prefill) g.prefills.push_back({it.num_tokens, local});
    else g.decode_contexts.push_back(local);
    if (active > 1) g.kvp_merges.push_back({it.num_tokens, active});
  }
}

std::vector<BatchShape> ReplicaScheduler::group_shapes(const Batch& b) const {
  if (cfg_.kv_parallel == 1) return {BatchShape::of(b)};
  std::vector<BatchShape> shapes(static_cast<size_t>(cfg_.kv_parallel));
  for (const auto& it : b.items) add_to_groups(it, kv_.groups(it.seq_id), shapes);
  return shapes;
}

}  // namespace xp::serving
