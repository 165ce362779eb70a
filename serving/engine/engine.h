// The real-execution loop (docs/architecture.md): the shared ReplicaScheduler forms each batch; the
// engine runs it through the model over the paged KV cache the scheduler's block tables
// address, samples tokens, and stamps them with wall-clock time for the same Metron metrics
// the simulator reports. Requests join the scheduler when their arrival time passes. KV
// exhaustion preempts by recompute (the scheduler's rule); the recomputed prefill covers the
// prompt plus the tokens already emitted, so outputs do not change. By default benchmarks'
// ignore_eos semantics: every request produces exactly its decode_tokens (stop_at() ends them at
// end-of-sequence ids instead). Single-threaded loop.
#pragma once
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "serving/metrics/collector.h"
#include "serving/model/llama.h"
#include "serving/model/llama_cuda.h"
#include "serving/scheduler/replica_scheduler.h"

namespace xp::serving {

// What the engine needs from a model: a forward pass over a batch with its own KV cache.
class ModelRunner {
 public:
  virtual ~ModelRunner() = default;
  virtual const LlamaConfig& config() const = 0;
  virtual std::vector<float> forward(const std::vector<ForwardItem>& items) = 0;
  // KV parallelism: the KV-parallel groups the runner spans, and a pass given as each group's
  // view of the batch (ForwardItem::kv; group 0's is this rank's). One group: forward().
  virtual int64_t kv_groups() const { return 1; }
  virtual std::vector<float> forward_groups(const std::vector<std::vector<ForwardItem>>& by_group);
  // Pipeline stages (Mnemosyne's SPP): submit() runs the first stage of a pass and hands it on;
  // wait_oldest() returns the logits of the oldest pass submitted and not yet returned. Up to
  // pipeline_stages() passes are in flight. One stage: submit() runs the whole pass.
  virtual int64_t pipeline_stages() const { return 1; }
  virtual void submit(const std::vector<std::vector<ForwardItem>>& by_group);
  virtual std::vector<float> wait_oldest();
  // Called while the engine waits for arrivals, at least every kKeepAliveS: a runner with
  // workers tells them it is alive, so that their wait for the next step can time out on a
  // controller that died.
  virtual void keep_alive() {}
  static constexpr double kKeepAliveS = 1.0;

 private:
  std::deque<std::vector<float>> done_;  // one stage: the logits submit() computed
};

// One forward pass as a value: what the controller (rank 0, which schedules, samples and writes
// results) sends to its workers, which run the same pass on their shards, as vLLM's driver worker
// broadcasts its model input. Sampling stays on the controller, which receives the gathered
// logits, so the plan carries no sampling parameters. Under KV parallelism it holds every
// group's view of the batch, group after group.
struct StepPlan {
  enum class Kind : uint8_t { kForward = 1, kKeepAlive = 2, kStop = 3 };
  struct Item {
    uint64_t seq_id = 0;
    int64_t start_position = 0;
    std::vector<int32_t> tokens, block_table;
    KvSlice kv;
  };
  Kind kind = Kind::kForward;
  uint32_t groups = 1;
  std::vector<Item> items;  // groups × the batch's items

  static StepPlan of(const std::vector<ForwardItem>& items);  // seq ids 0, 1, … (the pass needs none)
  static StepPlan of(const std::vector<std::vector<ForwardItem>>& by_group);
  std::vector<ForwardItem> forward_items(int64_t group = 0) const;  // views into this plan
  std::vector<std::byte> encode() const;
  static StepPlan decode(std::span<const std::byte> bytes);   // throws std::runtime_error if malformed
};

// The CPU reference with a paged KV cache of `num_kv_blocks` (for a tensor-parallel shard, its
// own KV heads).
std::unique_ptr<ModelRunner> cpu_runner(const LlamaModel& model, int64_t num_kv_blocks, int64_t block_size);
// How a model's ranks are laid out: TP × KVP × PP, rank = stage · (TP · KVP) + group · TP + tp
// (Vajra's order). A stage's TP × KVP ranks form its stage group; its rank 0 is the stage's lead.
struct RankLayout {
  int64_t tensor_parallel = 1, kv_parallel = 1, pipeline_stages = 1;
  int64_t ranks() const { return tensor_parallel * kv_parallel * pipeline_stages; }
  int64_t stage_size() const { return tensor_parallel * kv_parallel; }
  int64_t stage_of(int rank) const { return rank / stage_size(); }
  int64_t kv_group_of(int rank) const { return rank % stage_size() / tensor_parallel; }
  int64_t tp_rank_of(int rank) const { return rank % tensor_parallel; }
};

// This rank's sub-groups of `world`: its stage's ranks, its TP group, its KVP group.
struct RankGroups {
  std::unique_ptr<dist::ProcessGroup> stage, tp, kvp;
};
RankGroups split_ranks(dist::ProcessGroup& world, const RankLayout& layout, dist::Seconds timeout);
// This rank's part of the model at `dir` under `layout` (its TP shard, KVP group and stage).
std::unique_ptr<LlamaModel> load_rank_part(const std::filesystem::path& dir, int rank, const RankLayout& layout,
                                           const RankGroups& groups);

// The controller's runner (rank 0 of `world`) for a model over `world`'s ranks laid out as
// `layout` (the default: tensor parallelism over all of them); `shard` is this rank's part (loaded with its TP and KVP groups and stage 0), `stage`
// its stage group (null: `world`, when there is one stage). Each pass is broadcast to the stage
// group and run here; with several stages the stage leads pass it on with the hidden states and
// the last returns the logits. Destroying the runner tells every rank to stop.
std::unique_ptr<ModelRunner> model_parallel_runner(const LlamaModel& shard, dist::ProcessGroup& world, int64_t num_kv_blocks,
                                                    int64_t block_size, RankLayout layout = {},
                                                    dist::ProcessGroup* stage = nullptr);
// What ranks ≥ 1 of `world` run: each pass that reaches them, their KV-parallel group's view of
// it on their shard, until told to stop. A controller (or previous stage) silent past the group's
// timeout is a CollectiveError naming it.
void serve_model_parallel_worker(const LlamaModel& shard, dist::ProcessGroup& world, int64_t num_kv_blocks,
                                  int64_t block_size, RankLayout layout = {}, dist::ProcessGroup* stage = nullptr);
// A model's ranks laid out as `layout`, as threads of this process with `threads` OpenMP threads
// each, every one with its part of the model at `dir`: rank 0 (this thread) calls `controller`
// with its runner, whose end stops the others, which serve. A rank that fails ends them all with
// its error.
void run_ranks_in_threads(const std::filesystem::path& dir, const RankLayout& layout, int64_t num_kv_blocks,
                          int64_t block_size, dist::Seconds timeout, int threads,
                          const std::function<void(std::unique_ptr<ModelRunner>)>& controller);
// The CUDA backend (throws where no GPU is visible or the build has no CUDA).
std::unique_ptr<ModelRunner> cuda_runner(const LlamaModel& model, int64_t num_kv_blocks, int64_t block_size);

struct EngineResult {
  int64_t iterations = 0;
  int64_t preemptions = 0;
  int64_t most_in_flight = 0;  // batches in the pipeline at once (1 without pipeline stages)
  double wall_s = 0;
  bool stopped = false;
  std::map<uint64_t, std::vector<int32_t>> outputs;  // request id -> generated tokens
  // Requests the model cannot serve, left out while the others are served: request id -> why.
  std::map<uint64_t, std::string> rejected;
};

// Why `c`'s forward pass would refuse request `r` partway through serving it — a token id
// outside the vocabulary, more positions than the context, an empty prompt or no output — or ""
// if it would not.
std::string unservable(const Request& r, const std::vector<int32_t>& prompt, const LlamaConfig& c);

// One iteration as Engine::on_iteration reports it.
struct EngineIteration {
  const Batch& batch;
  std::vector<BatchShape> groups;  // each KV-parallel group's view, as scheduled (ReplicaScheduler::group_shapes)
  double seconds = 0;              // scheduling, the forward pass (every stage), sampling and bookkeeping
  bool shared_pipeline = false;    // another batch was in the pipeline stages for part of it
};

class Engine {
 public:
  Engine(const LlamaModel& model, const SchedulerConfig& scheduler, int64_t num_kv_blocks, SamplingParams sampling,
         uint64_t seed, ServingMetrics* metrics);
  // The same loop over another backend; `runner`'s KV cache must hold `num_kv_blocks` blocks.
  Engine(std::unique_ptr<ModelRunner> runner, const SchedulerConfig& scheduler, int64_t num_kv_blocks,
         SamplingParams sampling, uint64_t seed, ServingMetrics* metrics);

  // Queues `r` (`r.arrival_s` is relative to the start of run()) and returns "", or returns why
  // the model cannot serve it (unservable()) and leaves it out, listed in EngineResult::rejected,
  // rather than fail mid-run with the other requests.
  std::string add(const Request& r, std::vector<int32_t> prompt);
  // Called after every iteration with its batch, shapes and wall time — what one simulated
  // iteration stands for (profiling hooks).
  void on_iteration(std::function<void(const EngineIteration&)> fn) { on_iteration_ = std::move(fn); }
  EngineResult run(const std::function<bool()>& should_stop = {});
  // End every request at its first token in `ids` (kept in its output): the checkpoint's
  // end-of-sequence ids when not benchmarking with ignore-EOS. Empty (the default): every request
  // produces exactly its decode_tokens.
  void stop_at(std::set<int32_t> ids) { stop_ids_ = std::move(ids); }

  // Live serving (`exp serve`): requests join when they come, and the caller runs one iteration
  // at a time, ending sequences early at an end-of-sequence token, a stop string or a client
  // that left. The clock is seconds since the engine was made.
  struct StepEvents {
    std::vector<std::pair<uint64_t, int32_t>> tokens;                    // (request, token), batch order
    std::vector<std::pair<uint64_t, std::vector<int32_t>>> finished;    // request, its output tokens
  };
  // Arrives now; "" or why it cannot be served. `sampling` replaces the engine's for this request;
  // with `seed`, its tokens draw from stream (seed, 0), the same whatever its request id.
  std::string submit(Request r, std::vector<int32_t> prompt, std::optional<SamplingParams> sampling = {},
                     std::optional<uint64_t> seed = {});
  StepEvents step();                                           // nothing to run: no tokens
  void finish_early(uint64_t id);                              // frees its KV blocks now
  bool has_work() const { return scheduler_->has_work(); }
  int64_t kv_blocks_used() const { return scheduler_->kv().num_used(); }
  int64_t kv_blocks_total() const { return scheduler_->kv().num_total(); }
  double now() const;
  const LlamaConfig& model_config() const { return runner_->config(); }

 private:
  // One iteration at `now`: schedule, forward, sample, account; false if no batch formed. With
  // pipeline stages: fill the pipeline, each batch's leaving the first stage reported to the
  // scheduler (sequence pipelining), then complete its oldest batch; false if none is in flight.
  bool iterate(double now, StepEvents& ev);
  // The views of `b` the runner's KV-parallel groups run.
  std::vector<std::vector<ForwardItem>> forward_views(const Batch& b) const;
  struct Submitted {
    Batch batch;
    double started = 0;
    std::vector<BatchShape> groups;  // kept only for on_iteration
    bool shared_pipeline = false;
  };
  Submitted submitted(Batch b, double started) const;
  // Samples the tokens of `s.batch` from its logits and accounts for it.
  void complete(const Submitted& s, const std::vector<float>& logits, StepEvents& ev);
  void collect_finished(StepEvents& ev);

  std::unique_ptr<ModelRunner> runner_;
  std::unique_ptr<ReplicaScheduler> scheduler_;
  SamplingParams sampling_;
  uint64_t seed_;
  ServingMetrics* metrics_;
  std::vector<std::pair<Request, std::vector<int32_t>>> pending_;  // not yet arrived, by arrival
  std::map<uint64_t, std::vector<int32_t>> tokens_;               // prompt + outputs of live requests
  std::map<uint64_t, int64_t> prompt_len_;
  std::map<uint64_t, std::string> rejected_;
  std::map<uint64_t, std::pair<SamplingParams, std::optional<uint64_t>>> own_sampling_;  // live requests that set theirs
  std::function<void(const EngineIteration&)> on_iteration_;
  std::set<int32_t> stop_ids_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  int64_t iterations_ = 0;
  std::deque<Submitted> in_flight_;  // pipelined batches submitted
  size_t most_in_flight_ = 0;
};

}  // namespace xp::serving
