// A logical data-parallel world (docs/parallelism.md, Singularity's replica splicing without a
// device): a job fixes L logical ranks for its life; physical workers — N processes of a
// launch (mpirun, srun), each with W threads — run fixed round-robin subsets of them (rank r on
// process r mod N), rank by rank. Every rank's gradient lands in its own slot; every element of
// the summed gradient is the sum of the slots in rank order 0, 1, …, L−1, so it — and with it
// every parameter — is bit-identical for any N and W: a run can continue on more or fewer workers.
//
// Across processes the work after the shards is divided, as ZeRO stage 1 divides it: the
// parameters, laid end to end, are cut into N equal shares; process p sums the slots and runs
// the optimizer over share p only, then the processes exchange their updated shares. The
// optimizer's moments are current only in the owner's share between steps, and are gathered
// whole when a checkpoint reads them (gather_optimizer_state). The slots and shares travel
// through dist::RankRegions: shared memory when the processes share a machine, messages
// otherwise.
//
// The consistent cut (§4.4.4): a process that wants to stop (a signal) says so in the same
// exchange as its slots, so every process learns at the same step that one of them wants to stop.
//
// Why the pieces are as they are:
// - GEMM runs single-threaded with fixed cache sizes while shards run (Eigen's blocking, and so
//   its summation order, depends on its thread count and the CPU's caches): parallelism lives
//   at the logical-rank level only, and a result does not depend on the machine (same ISA).
// - Every shard starts from the step's buffers (BatchNorm's running statistics, RNG positions),
//   and the buffers rank 0's shard leaves become the step's result, as with PyTorch DDP's
//   broadcast of rank 0's buffers.
// - The optimizer updates one model per process (the "squash" analogue); the other workers'
//   replicas share its parameter values (they only read them), so an update reaches them uncopied.
// CPU tensors only. Not thread-safe itself; run() uses W OpenMP threads inside. Every process
// of the group must call run(), update(), gather_optimizer_state() and gather_gradients() in the
// same order (SPMD).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/dist/process_group.h"
#include "core/dist/rank_regions.h"
#include "core/nn/module.h"
#include "core/nn/optim.h"

namespace xp::nn {

class DataParallel {
 public:
  // replicas[w] is this process's worker w's copy of the model, replicas[0] the one the
  // optimizer updates; all must have the same parameter and buffer shapes. `processes`: the
  // launch's processes (null: this process alone); each must have at least as many of the
  // logical ranks as it has replicas.
  // `transport`: how the processes exchange (tests choose messages to cover the other machines'
  // path on one machine).
  DataParallel(std::vector<Module*> replicas, int64_t logical_ranks, dist::ProcessGroup* processes = nullptr,
               dist::RankRegions::Transport transport = dist::RankRegions::Transport::kAuto);
  ~DataParallel();

  int64_t logical_ranks() const { return logical_ranks_; }
  int64_t workers() const { return static_cast<int64_t>(replicas_.size()); }

  struct ShardResult {
    double loss_sum = 0.0;     // the shard's loss, summed over its samples
    int64_t correct = 0;
    float grad_scale = 1.0f;   // the shard's gradient is multiplied by this (its share of the batch)
  };
  // Runs shard(rank, model) for every logical rank on its worker, each after zero_grad and with
  // the step's buffers; leaves in replicas[0] rank 0's buffers and the gradient Σ_r grad_scale_r ·
  // g_r summed in rank order — over this process's share of the elements (owned_elements(); the
  // rest mean nothing until gather_gradients()). Returns the ranks' losses and counts summed in
  // rank order.
  // `stop`, when given: in, whether this process wants to stop; out, whether any process does
  // (the same answer on every process, at the same step).
  ShardResult run(const std::function<ShardResult(int64_t rank, Module& model)>& shard, bool* stop = nullptr);
  // After run(): `optimizer` (over replicas[0]'s parameters, in their order) applies one step at
  // `lr` to this process's share, the processes exchange their shares, `after` (if any) runs on
  // the whole updated model, and the other workers' replicas its buffers (its parameter values
  // they share).
  void update(Optimizer& optimizer, double lr, const std::function<void()>& after = {});
  // Makes `optimizer`'s moments whole on every process (each share from the process that keeps
  // it current), for a checkpoint or a fingerprint to read. A collective.
  void gather_optimizer_state(Optimizer& optimizer);
  // Makes the summed gradient of the last run() whole on every process. A collective.
  void gather_gradients();
  // Gives the other replicas replicas[0]'s parameter values (shared) and a copy of its buffers
  // (after a load).
  void broadcast_parameters();
  // The parameter elements this process sums and updates (all of them alone).
  ElementRange owned_elements() const;

 private:
  // This process's logical ranks, in order.
  std::vector<int64_t> owned_ranks() const;
  // Every process's share of `tensors` (shaped as the parameters, in their order) to every process.
  void exchange_shares(const std::vector<Tensor*>& tensors);

  std::vector<Module*> replicas_;
  int64_t logical_ranks_;
  dist::ProcessGroup* processes_;
  int64_t slot_floats_ = 0;  // parameters, concatenated
  // The block every process contributes to a step: a stop byte (padded to 8), the buffers its
  // first rank leaves (rank 0's on process 0), then per owned rank (in order) a record: loss sum
  // (f64), correct (i64), scaled gradient (f32 × slot_floats_). Alone it lives in local_; across
  // processes in regions_, followed by the process's share of the parameters (share_floats_).
  size_t buffer_bytes_ = 0, record_bytes_ = 0, block_bytes_ = 0;
  std::vector<int64_t> share_begin_;  // process p's share is [share_begin_[p], share_begin_[p + 1])
  int64_t share_floats_ = 0;          // the largest share
  std::unique_ptr<dist::RankRegions> regions_;
  std::vector<std::byte> local_;
  bool direct_ = false;     // one worker alone: each rank's gradient goes onto a running sum, no slots
  std::vector<float> sum_;  // … that sum, in rank order
  // Per worker: the rank whose gradient its replica keeps in place for this process's share (its
  // last), and that rank's gradient scale.
  std::vector<std::pair<int64_t, float>> kept_;
};

// The logical world a training loop runs in, set up the same way for every experiment: the
// launch's processes (a sub-group with the job's collective timeout), this process's worker
// replicas of the model and the DataParallel over them.
struct WorldOptions {
  int64_t logical_ranks = 1;
  int64_t workers = 1;  // 0: this process's share of its node's cores, at most the ranks it runs
  double collective_timeout_s = 600;  // launched: a process silent this long ends the run, named
};

// The worker count `options` asks for (0 resolved); throws std::invalid_argument when the
// processes outnumber the logical ranks or the workers are not between 1 and the ranks this
// process runs.
int64_t resolve_workers(const WorldOptions& options, dist::ProcessGroup* processes);

class TrainingWorld {
 public:
  // `make_replica` builds another model of `model`'s architecture (its values are then copied
  // from `model`, which the optimizer updates). `processes`: the launch's (null: this one alone).
  TrainingWorld(Module& model, const std::function<std::shared_ptr<Module>()>& make_replica, WorldOptions options,
                dist::ProcessGroup* processes);
  DataParallel& data_parallel() { return *data_parallel_; }

 private:
  std::vector<std::shared_ptr<Module>> replicas_;  // workers 1 … W−1
  std::unique_ptr<dist::ProcessGroup> processes_;
  std::unique_ptr<DataParallel> data_parallel_;
};

}  // namespace xp::nn
