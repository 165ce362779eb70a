#include "serving/engine/engine.h"

#include <fmt/format.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <stdexcept>
#include <thread>

#include "core/dist/thread_group.h"
#include "core/jobs/bytes.h"

namespace xp::serving {

namespace {

class CpuRunner : public ModelRunner {
 public:
  CpuRunner(const LlamaModel& m, int64_t blocks, int64_t block_size)
      : model_(m), cache_(m.make_kv_cache(blocks, block_size)) {}
  const LlamaConfig& config() const override { return model_.config(); }
  std::vector<float> forward(const std::vector<ForwardItem>& items) override { return model_.forward(items, cache_); }

 private:
  const LlamaModel& model_;
  KvCache cache_;
};

// What a stage lead passes to the next stage: the plan's bytes (u64 length first), then the
// hidden states (f32); to the controller from the last stage: the logits alone.
std::vector<std::byte> pack(const std::vector<std::byte>& plan, const std::vector<float>& hidden) {
  std::vector<std::byte> out(sizeof(uint64_t) + plan.size() + hidden.size() * sizeof(float));
  const uint64_t n = plan.size();
  std::memcpy(out.data(), &n, sizeof n);
  std::copy(plan.begin(), plan.end(), out.begin() + sizeof n);
  std::copy_n(reinterpret_cast<const std::byte*>(hidden.data()), hidden.size() * sizeof(float),
              out.begin() + static_cast<std::ptrdiff_t>(sizeof n + plan.size()));
  return out;
}

std::pair<StepPlan, std::vector<float>> unpack(std::span<const std::byte> bytes) {
  uint64_t n = 0;
  if (bytes.size() < sizeof n) throw std::runtime_error("a stage message cut short");
  std::memcpy(&n, bytes.data(), sizeof n);
  if (bytes.size() - sizeof n < n || (bytes.size() - sizeof n - n) % sizeof(float))
    throw std::runtime_error(fmt::format("a stage message of {} bytes with a {}-byte plan", bytes.size(), n));
  std::vector<float> hidden((bytes.size() - sizeof n - n) / sizeof(float));
  std::copy_n(bytes.begin() + static_cast<std::ptrdiff_t>(sizeof n + n), hidden.size() * sizeof(float),
              reinterpret_cast<std::byte*>(hidden.data()));
  return {StepPlan::decode(bytes.subspan(sizeof n, n)), std::move(hidden)};
}

std::vector<float> as_floats(std::span<const std::byte> bytes) {
  if (bytes.size() % sizeof(float)) throw std::runtime_error("logits of a partial float");
  std::vector<float> out(bytes.size() / sizeof(float));
  std::copy(bytes.begin(), bytes.end(), reinterpret_cast<std::byte*>(out.data()));
  return out;
}

// The controller (rank 0): stage 0's lead, in KV-parallel group 0.
class ModelParallelRunner final : public CpuRunner {
 public:
  ModelParallelRunner(const LlamaModel& m, dist::ProcessGroup& world, dist::ProcessGroup& stage, RankLayout layout,
                      int64_t blocks, int64_t block_size)
      : CpuRunner(m, blocks, block_size), world_(world), stage_(stage), layout_(layout) {}
  ~ModelParallelRunner() override {
    try {
      send_control(StepPlan::Kind::kStop);
    } catch (const std::exception&) {  // the workers are gone already; their own timeouts end them
    }
  }
  std::vector<float> forward(const std::vector<ForwardItem>& items) override { return forward_groups({items}); }
  int64_t kv_groups() const override { return layout_.kv_parallel; }
  int64_t pipeline_stages() const override { return layout_.pipeline_stages; }
  std::vector<float> forward_groups(const std::vector<std::vector<ForwardItem>>& by_group) override {
    if (layout_.pipeline_stages > 1) {
      submit(by_group);
      return wait_oldest();
    }
    return run_first_stage(by_group).second;
  }
  void submit(const std::vector<std::vector<ForwardItem>>& by_group) override {
    if (layout_.pipeline_stages == 1) return ModelRunner::submit(by_group);
    auto [plan, hidden] = run_first_stage(by_group);
    world_.send_bytes(pack(plan, hidden), static_cast<int>(layout_.stage_size()));
  }
  std::vector<float> wait_oldest() override {
    if (layout_.pipeline_stages == 1) return ModelRunner::wait_oldest();
    return as_floats(world_.recv_bytes(static_cast<int>((layout_.pipeline_stages - 1) * layout_.stage_size())));
  }
  void keep_alive() override { send_control(StepPlan::Kind::kKeepAlive); }

 private:
  // Sends the pass to the first stage's workers and runs this rank's part: the plan's bytes, and
  // the logits (one stage) or the hidden states for the next stage.
  std::pair<std::vector<std::byte>, std::vector<float>> run_first_stage(const std::vector<std::vector<ForwardItem>>& by_group) {
    if (static_cast<int64_t>(by_group.size()) != layout_.kv_parallel)
      throw std::invalid_argument(fmt::format("a pass for {} KV-parallel groups on a runner of {}", by_group.size(),
                                              layout_.kv_parallel));
    std::vector<std::byte> plan = StepPlan::of(by_group).encode();
    stage_.broadcast_bytes(plan, 0);
    std::vector<float> out = CpuRunner::forward(by_group.front());  // the controller is in group 0
    return {std::move(plan), std::move(out)};
  }
  void send_control(StepPlan::Kind kind) {
    std::vector<std::byte> plan = StepPlan{kind, 1, {}}.encode();
    stage_.broadcast_bytes(plan, 0);
    if (layout_.pipeline_stages > 1) world_.send_bytes(pack(plan, {}), static_cast<int>(layout_.stage_size()));
  }
  dist::ProcessGroup& world_;
  dist::ProcessGroup& stage_;
  RankLayout layout_;
};

class CudaRunner final : public ModelRunner {
 public:
  CudaRunner(const LlamaModel& m, int64_t blocks, int64_t block_size) : model_(m, blocks, block_size) {
    if (m.tensor_parallel() != 1) throw std::invalid_argument("the CUDA engine runs tensor_parallel=1");
  }
  const LlamaConfig& config() const override { return model_.config(); }
  std::vector<float> forward(const std::vector<ForwardItem>& items) override { return model_.forward(items); }

 private:
  LlamaCudaModel model_;
};

}  // namespace

std::unique_ptr<ModelRunner> cpu_runner(const LlamaModel& model, int64_t num_kv_blocks, int64_t block_size) {
  return std::make_unique<CpuRunner>(model, num_kv_blocks, block_size);
}

std::vector<float> ModelRunner::forward_groups(const std::vector<std::vector<ForwardItem>>& by_group) {
  if (by_group.size() != 1) throw std::invalid_argument("this runner has no KV-parallel groups");
  return forward(by_group.front());
}

void ModelRunner::submit(const std::vector<std::vector<ForwardItem>>& by_group) { done_.push_back(forward_groups(by_group)); }

std::vector<float> ModelRunner::wait_oldest() {
  if (done_.empty()) throw std::logic_error("wait_oldest with no pass in flight");
  std::vector<float> out = std::move(done_.front());
  done_.pop_front();
  return out;
}

RankGroups split_ranks(dist::ProcessGroup& world, const RankLayout& l, dist::Seconds timeout) {
  const int r = world.rank(), tp = static_cast<int>(l.tensor_parallel), stage = static_cast<int>(l.stage_of(r));
  return {world.split(stage, "pipeline_stage", timeout),
          world.split(r / tp, "tensor_parallel", timeout),  // same stage and KVP group
          world.split(stage * tp + static_cast<int>(l.tp_rank_of(r)), "kv_parallel", timeout)};
}

std::unique_ptr<LlamaModel> load_rank_part(const std::filesystem::path& dir, int rank, const RankLayout& layout,
                                           const RankGroups& groups) {
  return LlamaModel::load(dir, groups.tp.get(), groups.kvp.get(), {layout.stage_of(rank), layout.pipeline_stages});
}

namespace {
// The default layout (one rank) over a world of several: tensor parallelism over all of them.
void check_layout(const dist::ProcessGroup& world, RankLayout& layout) {
  if (layout.ranks() == 1) layout.tensor_parallel = world.size();
  if (layout.ranks() != world.size())
    throw std::invalid_argument(fmt::format("{} ranks cannot hold TP {} × KVP {} × {} pipeline stages", world.size(),
                                            layout.tensor_parallel, layout.kv_parallel, layout.pipeline_stages));
}
}  // namespace

std::unique_ptr<ModelRunner> model_parallel_runner(const LlamaModel& shard, dist::ProcessGroup& world, int64_t num_kv_blocks,
                                                    int64_t block_size, RankLayout layout, dist::ProcessGroup* stage) {
  if (world.rank() != 0) throw std::logic_error("the controller is rank 0");
  check_layout(world, layout);
  return std::make_unique<ModelParallelRunner>(shard, world, stage ? *stage : world, layout, num_kv_blocks, block_size);
}

void serve_model_parallel_worker(const LlamaModel& shard, dist::ProcessGroup& world, int64_t num_kv_blocks, int64_t block_size,
                                  RankLayout layout, dist::ProcessGroup* stage_group) {
  check_layout(world, layout);
  dist::ProcessGroup& mine = stage_group ? *stage_group : world;
  const int rank = world.rank(), size = static_cast<int>(layout.stage_size());
  const int64_t stage = layout.stage_of(rank), group = layout.kv_group_of(rank);
  const bool lead = mine.rank() == 0, last = stage == layout.pipeline_stages - 1;
  KvCache cache = shard.make_kv_cache(num_kv_blocks, block_size);
  for (;;) {
    // Stage 0's workers get the controller's plan; a later stage's lead receives the plan with
    // the previous stage's hidden states and shares them with its stage.
    std::vector<std::byte> bytes;
    if (stage > 0 && lead) bytes = world.recv_bytes(rank - size);
    mine.broadcast_bytes(bytes, 0);
    auto [plan, hidden] = stage == 0 ? std::pair{StepPlan::decode(bytes), std::vector<float>{}} : unpack(bytes);
    if (plan.kind != StepPlan::Kind::kForward) {
      if (lead && !last) world.send_bytes(bytes, rank + size);  // on down the pipeline
      if (plan.kind == StepPlan::Kind::kStop) return;
      continue;
    }
    if (static_cast<int64_t>(plan.groups) != layout.kv_parallel)
      throw std::runtime_error(fmt::format("a step plan for {} KV-parallel groups reached a worker of {}", plan.groups,
                                           layout.kv_parallel));
    std::vector<float> out = shard.forward(plan.forward_items(group), cache, hidden);
    if (!lead) continue;
    if (!last) world.send_bytes(pack(plan.encode(), out), rank + size);
    else if (layout.pipeline_stages > 1) world.send_bytes(std::as_bytes(std::span<const float>(out)), 0);
  }
}

void run_ranks_in_threads(const std::filesystem::path& dir, const RankLayout& layout, int64_t num_kv_blocks,
                          int64_t block_size, dist::Seconds timeout, int threads,
                          const std::function<void(std::unique_ptr<ModelRunner>)>& controller) {
  const int before = omp_get_max_threads();  // rank 0 is this thread
  dist::run_threads(static_cast<int>(layout.ranks()), timeout, [&](dist::ProcessGroup& g) {
    set_num_threads(threads);  // per thread: each rank's OpenMP team
    const RankGroups mine = split_ranks(g, layout, timeout);
    const auto part = load_rank_part(dir, g.rank(), layout, mine);
    g.barrier();  // every part loaded before the controller's clock starts
    if (g.rank() == 0) controller(model_parallel_runner(*part, g, num_kv_blocks, block_size, layout, mine.stage.get()));
    else serve_model_parallel_worker(*part, g, num_kv_blocks, block_size, layout, mine.stage.get());
  });
  set_num_threads(before);
}

// ---------------------------------------------------------------------------------------------
// StepPlan's wire format: kind (u8), group count (u32), item count (u32), then per item seq_id
// (u64), start position (i64), token count (u32) and tokens (i32), block count (u32) and block
// ids (i32), the KV slice's first position (i64), cached tokens (i64) and whether it appends
// (u8); native byte order (the ranks of one launch share an architecture).

StepPlan StepPlan::of(const std::vector<ForwardItem>& items) { return of(std::vector<std::vector<ForwardItem>>{items}); }

StepPlan StepPlan::of(const std::vector<std::vector<ForwardItem>>& by_group) {
  StepPlan p;
  p.groups = static_cast<uint32_t>(by_group.size());
  for (const auto& items : by_group)
    for (size_t i = 0; i < items.size(); ++i)
      p.items.push_back({i, items[i].start_position, {items[i].tokens.begin(), items[i].tokens.end()},
                         items[i].block_table ? *items[i].block_table : std::vector<int32_t>{}, items[i].kv});
  return p;
}

std::vector<ForwardItem> StepPlan::forward_items(int64_t group) const {
  const size_t per_group = items.size() / std::max<uint32_t>(groups, 1);
  std::vector<ForwardItem> out;
  for (size_t i = 0; i < per_group; ++i) {
    const Item& it = items[static_cast<size_t>(group) * per_group + i];
    out.emplace_back(std::span<const int32_t>(it.tokens), it.start_position, &it.block_table, it.kv);
  }
  return out;
}

std::vector<std::byte> StepPlan::encode() const {
  jobs::ByteWriter out;
  out.put(static_cast<uint8_t>(kind));
  out.put(groups);
  out.put(static_cast<uint32_t>(items.size()));
  for (const Item& it : items) {
    out.put(it.seq_id);
    out.put(it.start_position);
    out.put_vector(it.tokens);
    out.put_vector(it.block_table);
    out.put(it.kv.first_position);
    out.put(it.kv.cached);
    out.put(static_cast<uint8_t>(it.kv.appends));
  }
  return out.take();
}

StepPlan StepPlan::decode(std::span<const std::byte> bytes) {
  jobs::ByteReader in(bytes.data(), bytes.size());
  StepPlan p;
  try {
    const auto kind = in.get<uint8_t>();
    if (kind < 1 || kind > 3) throw std::runtime_error(fmt::format("step plan of unknown kind {}", kind));
    p.kind = static_cast<Kind>(kind);
    p.groups = in.get<uint32_t>();
    const auto n = in.get<uint32_t>();
    if (p.groups < 1 || n % p.groups) throw std::runtime_error(fmt::format("step plan of {} items over {} groups", n, p.groups));
    for (uint32_t i = 0; i < n; ++i) {
      Item it;
      it.seq_id = in.get<uint64_t>();
      it.start_position = in.get<int64_t>();
      it.tokens = in.get_vector<int32_t>();
      it.block_table = in.get_vector<int32_t>();
      it.kv.first_position = in.get<decltype(it.kv.first_position)>();
      it.kv.cached = in.get<decltype(it.kv.cached)>();
      it.kv.appends = in.get<uint8_t>() != 0;
      p.items.push_back(std::move(it));
    }
  } catch (const jobs::CheckpointError& e) {
    throw std::runtime_error(fmt::format("step plan cut short ({} bytes): {}", bytes.size(), e.what()));
  }
  if (!in.at_end()) throw std::runtime_error(fmt::format("step plan has {} bytes past its end", in.remaining()));
  return p;
}

std::unique_ptr<ModelRunner> cuda_runner(const LlamaModel& model, int64_t num_kv_blocks, int64_t block_size) {
  return std::make_unique<CudaRunner>(model, num_kv_blocks, block_size);
}

Engine::Engine(const LlamaModel& model, const SchedulerConfig& scheduler, int64_t num_kv_blocks, SamplingParams sampling,
               uint64_t seed, ServingMetrics* metrics)
    : Engine(cpu_runner(model, num_kv_blocks, scheduler.block_size), scheduler, num_kv_blocks, sampling, seed, metrics) {}

Engine::Engine(std::unique_ptr<ModelRunner> runner, const SchedulerConfig& scheduler, int64_t num_kv_blocks,
               SamplingParams sampling, uint64_t seed, ServingMetrics* metrics)
    : runner_(std::move(runner)),
      scheduler_(ReplicaScheduler::create(scheduler, num_kv_blocks)),
      sampling_(sampling),
      seed_(seed),
      metrics_(metrics) {
  // Fewer batches in flight than stages is allowed: one at a time times whole passes.
  if (scheduler.pipeline_stages > runner_->pipeline_stages())
    throw std::invalid_argument(fmt::format("the scheduler's {} pipeline stages on a runner of {}", scheduler.pipeline_stages,
                                            runner_->pipeline_stages()));
  if (scheduler.kv_parallel != runner_->kv_groups())
    throw std::invalid_argument(fmt::format("the scheduler's {} KV-parallel groups on a runner of {}", scheduler.kv_parallel,
                                            runner_->kv_groups()));
}

std::string unservable(const Request& r, const std::vector<int32_t>& prompt, const LlamaConfig& c) {
  if (prompt.empty()) return "the prompt is empty";
  if (r.decode_tokens < 1) return fmt::format("asks for {} output tokens (at least 1)", r.decode_tokens);
  for (size_t i = 0; i < prompt.size(); ++i)
    if (prompt[i] < 0 || prompt[i] >= c.vocab_size)
      return fmt::format("token id {} at prompt position {} is outside the vocabulary [0, {})", prompt[i], i, c.vocab_size);
  // Every token but the last output is fed back, each at its own position (written so that a
  // huge decode_tokens cannot overflow).
  if (r.decode_tokens - 1 > c.max_position_embeddings - r.prompt_tokens)
    return fmt::format("{} prompt + {} output tokens need more positions than the model's context of {} "
                       "(max_position_embeddings)", r.prompt_tokens, r.decode_tokens, c.max_position_embeddings);
  return "";
}

std::string Engine::add(const Request& r, std::vector<int32_t> prompt) {
  if (static_cast<int64_t>(prompt.size()) != r.prompt_tokens)
    throw std::invalid_argument(fmt::format("request {}: {} prompt tokens given, {} declared", r.id, prompt.size(), r.prompt_tokens));
  std::string why = unservable(r, prompt, runner_->config());
  if (why.empty()) pending_.emplace_back(r, std::move(prompt));
  else rejected_[r.id] = why;
  return why;
}

double Engine::now() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

std::string Engine::submit(Request r, std::vector<int32_t> prompt, std::optional<SamplingParams> sampling,
                           std::optional<uint64_t> seed) {
  r.arrival_s = now();
  r.prompt_tokens = static_cast<int64_t>(prompt.size());
  std::string why = unservable(r, prompt, runner_->config());
  if (!why.empty()) return why;
  prompt_len_[r.id] = r.prompt_tokens;
  tokens_[r.id] = std::move(prompt);
  if (sampling || seed) own_sampling_[r.id] = {sampling.value_or(sampling_), seed};
  scheduler_->add_request(r);
  return "";
}

void Engine::finish_early(uint64_t id) { scheduler_->finish_early(id, now()); }

Engine::StepEvents Engine::step() {
  StepEvents ev;
  if (!iterate(now(), ev)) collect_finished(ev);  // sequences ended early while idle
  return ev;
}

EngineResult Engine::run(const std::function<bool()>& should_stop) {
  std::stable_sort(pending_.begin(), pending_.end(),
                   [](const auto& a, const auto& b) { return a.first.arrival_s < b.first.arrival_s; });
  EngineResult result;
  start_ = std::chrono::steady_clock::now();
  iterations_ = 0;
  size_t next = 0;
  while (next < pending_.size() || scheduler_->has_work()) {
    if (should_stop && should_stop()) {
      result.stopped = true;
      break;
    }
    const double t = now();
    for (; next < pending_.size() && pending_[next].first.arrival_s <= t; ++next) {
      auto& [req, prompt] = pending_[next];
      prompt_len_[req.id] = req.prompt_tokens;
      tokens_[req.id] = std::move(prompt);
      scheduler_->add_request(req);
    }
    StepEvents ev;
    if (!iterate(t, ev)) {
      if (next < pending_.size()) {  // idle until the next arrival, saying so to any workers
        const double wait = std::max(0.0, pending_[next].first.arrival_s - now());
        std::this_thread::sleep_for(std::chrono::duration<double>(std::min(wait, ModelRunner::kKeepAliveS)));
        if (wait > ModelRunner::kKeepAliveS) runner_->keep_alive();
        continue;
      }
      if (!scheduler_->has_work()) break;
      throw std::logic_error("the scheduler holds work but forms no batch and nothing else is running");
    }
    for (auto& [id, out] : ev.finished) result.outputs[id] = std::move(out);
  }
  result.iterations = iterations_;
  result.most_in_flight = std::max<int64_t>(1, static_cast<int64_t>(most_in_flight_));
  result.preemptions = scheduler_->num_preemptions();
  result.rejected = rejected_;
  result.wall_s = now();
  return result;
}

bool Engine::iterate(double now, StepEvents& ev) {
  if (runner_->pipeline_stages() > 1) {
    // Fill the pipeline (the scheduler stops at one batch per stage in flight); a batch out of the
    // first stage may let a prompt send its next chunk (sequence pipelining).
    for (Batch b = scheduler_->schedule(now); !b.empty(); b = scheduler_->schedule(this->now())) {
      Submitted s = submitted(std::move(b), this->now());
      runner_->submit(forward_views(s.batch));
      scheduler_->on_stage_completed(s.batch, 0, this->now());
      if (!in_flight_.empty()) {
        s.shared_pipeline = true;
        for (auto& other : in_flight_) other.shared_pipeline = true;
      }
      in_flight_.push_back(std::move(s));
      most_in_flight_ = std::max(most_in_flight_, in_flight_.size());
    }
    if (in_flight_.empty()) return false;
    Submitted s = std::move(in_flight_.front());
    in_flight_.pop_front();
    complete(s, runner_->wait_oldest(), ev);
    return true;
  }
  Batch b = scheduler_->schedule(now);
  if (b.empty()) return false;
  Submitted s = submitted(std::move(b), now);
  complete(s, runner_->forward_groups(forward_views(s.batch)), ev);
  return true;
}

Engine::Submitted Engine::submitted(Batch b, double started) const {
  Submitted s{std::move(b), started, {}, false};
  if (on_iteration_) s.groups = scheduler_->group_shapes(s.batch);  // before the batch changes the KV
  return s;
}

std::vector<std::vector<ForwardItem>> Engine::forward_views(const Batch& b) const {
  const KvGroups& kv = scheduler_->kv();
  std::vector<std::vector<ForwardItem>> by_group(static_cast<size_t>(kv.num_groups()));
  for (const auto& it : b.items) {
    const std::vector<int32_t>& toks = tokens_.at(it.seq_id);
    // A prefill item covers prompt positions [context, context + n) of this attempt's prompt
    // (original prompt + outputs before a recompute); a decode feeds back the last token.
    const std::span<const int32_t> new_tokens(toks.data() + it.context, static_cast<size_t>(it.num_tokens));
    if (kv.num_groups() == 1) {
      by_group[0].emplace_back(new_tokens, it.context, &kv.table(it.seq_id));
      continue;
    }
    // KV parallelism: the i-th group holding the sequence has tokens [i·M, (i + 1)·M), the last
    // all from (n − 1)·M; the new tokens go to the one holding their position (a prompt chunk
    // never crosses a boundary; decodes go to the last). Other groups see no KV of it.
    static const std::vector<int32_t> kNoBlocks;
    const std::vector<int32_t>& held = kv.groups(it.seq_id);
    const auto n = static_cast<int64_t>(held.size());
    const int64_t m = kv.tokens_per_group(), filling = std::min(it.context / m, n - 1);
    for (int64_t g = 0; g < kv.num_groups(); ++g) {
      const auto at = std::find(held.begin(), held.end(), static_cast<int32_t>(g));
      if (at == held.end()) {
        by_group[static_cast<size_t>(g)].emplace_back(new_tokens, it.context, &kNoBlocks, KvSlice{0, 0, false});
        continue;
      }
      const int64_t i = at - held.begin(), first = i * m;
      const int64_t cached = std::clamp<int64_t>(it.context - first, 0, i + 1 < n ? m : it.context);
      by_group[static_cast<size_t>(g)].emplace_back(new_tokens, it.context, &kv.group(g).table(it.seq_id),
                                                    KvSlice{first, cached, i == filling});
    }
  }
  return by_group;
}

void Engine::complete(const Submitted& s, const std::vector<float>& logits, StepEvents& ev) {
  const Batch& b = s.batch;
  // Sample before the step is stamped: a token exists once it is sampled, so TTFT and TBT
  // include sampling. An item emits when it reaches the end of its sequence's tokens (a
  // decode, or a prompt's last chunk); a non-final chunk's sample is discarded.
  std::set<uint64_t> sampled;
  const auto vocab = static_cast<size_t>(runner_->config().vocab_size);
  for (size_t i = 0; i < b.items.size(); ++i) {
    const auto& it = b.items[i];
    std::vector<int32_t>& toks = tokens_.at(it.seq_id);
    if (it.context + it.num_tokens != static_cast<int64_t>(toks.size())) continue;
    // Counter-based: output token k of request r draws from stream (seed, r) at word 2k,
    // whatever the batch held and however often r was preempted.
    auto own = own_sampling_.find(it.seq_id);
    const bool own_seed = own != own_sampling_.end() && own->second.second;
    runtime::RngStream rng(own_seed ? *own->second.second : seed_, own_seed ? 0 : it.seq_id);
    rng.seek(2 * static_cast<uint64_t>(static_cast<int64_t>(toks.size()) - prompt_len_.at(it.seq_id)));
    toks.push_back(sample_token(std::span<const float>(logits.data() + i * vocab, vocab),
                                own != own_sampling_.end() ? own->second.first : sampling_, rng));
    sampled.insert(it.seq_id);
    ev.tokens.emplace_back(it.seq_id, toks.back());
  }
  StepResult step = scheduler_->on_step_completed(b, this->now());
  if (std::set<uint64_t>(step.emitted.begin(), step.emitted.end()) != sampled)
    throw std::logic_error("the engine and the scheduler disagree on which sequences emitted a token");
  for (const auto& [id, token] : ev.tokens)
    if (stop_ids_.count(token)) scheduler_->finish_early(id, this->now());  // a no-op when it just finished anyway
  ++iterations_;
  if (metrics_)
    metrics_->on_batch(b, 0, b.scheduled_s, this->now(), scheduler_->kv().num_used(), scheduler_->kv().num_total());
  collect_finished(ev);
  if (on_iteration_) on_iteration_({b, s.groups, this->now() - s.started, s.shared_pipeline});
}

void Engine::collect_finished(StepEvents& ev) {
  for (const Sequence& s : scheduler_->take_finished()) {
    std::vector<int32_t>& toks = tokens_.at(s.id());
    ev.finished.emplace_back(s.id(), std::vector<int32_t>(toks.begin() + prompt_len_.at(s.id()), toks.end()));
    tokens_.erase(s.id());
    prompt_len_.erase(s.id());
    own_sampling_.erase(s.id());
    if (metrics_) metrics_->on_finished(s, 0);
  }
}

}  // namespace xp::serving
