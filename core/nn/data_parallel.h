// A logical data-parallel world (docs/parallelism.md, Singularity's replica splicing without a
// device): a job fixes L logical ranks for its life; physical workers — N processes of a
// launch (mpirun, srun), each with W threads — run fixed round-robin subsets of them (rank r on
// process r mod N), rank by rank. Every rank's gradient lands in its own slot, the processes
// all-gather their slots, and every process sums them in rank order 0, 1, …, L−1, so the
// summed gradient — and with it every parameter — is bit-identical for any N and W: a run can
// continue on more or fewer workers.
//
// The consistent cut (§4.4.4): a process that wants to stop (a signal) says so in the same
// all-gather, so every process learns at the same step that one of them wants to stop.
//
// Why the pieces are as they are:
// - GEMM runs single-threaded with fixed cache sizes while shards run (Eigen's blocking, and so
//   its summation order, depends on its thread count and the CPU's caches): parallelism lives
//   at the logical-rank level only, and a result does not depend on the machine (same ISA).
// - Every shard starts from the step's buffers (BatchNorm's running statistics, RNG positions),
//   and the buffers rank 0's shard leaves become the step's result, as with PyTorch DDP's
//   broadcast of rank 0's buffers.
// - The optimizer updates one model (the "squash" analogue); broadcast_parameters() copies it to
//   the other workers' replicas.
// CPU tensors only. Not thread-safe itself; run() uses W OpenMP threads inside. Every process
// of the group must call run() the same number of times (SPMD).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/dist/process_group.h"
#include "core/nn/module.h"

namespace xp::nn {

class DataParallel {
 public:
  // replicas[w] is this process's worker w's copy of the model, replicas[0] the one the
  // optimizer updates; all must have the same parameter and buffer shapes. `processes`: the
  // launch's processes (null: this process alone); each must have at least as many of the
  // logical ranks as it has replicas.
  DataParallel(std::vector<Module*> replicas, int64_t logical_ranks, dist::ProcessGroup* processes = nullptr);

  int64_t logical_ranks() const { return logical_ranks_; }
  int64_t workers() const { return static_cast<int64_t>(replicas_.size()); }

  struct ShardResult {
    double loss_sum = 0.0;     // the shard's loss, summed over its samples
    int64_t correct = 0;
    float grad_scale = 1.0f;   // the shard's gradient is multiplied by this (its share of the batch)
  };
  // Runs shard(rank, model) for every logical rank on its worker, each after zero_grad and with
  // the step's buffers; leaves in replicas[0] the gradient Σ_r grad_scale_r · g_r summed in rank
  // order and rank 0's buffers. Returns the ranks' losses and counts summed in rank order.
  // `stop`, when given: in, whether this process wants to stop; out, whether any process does
  // (the same answer on every process, at the same step).
  ShardResult run(const std::function<ShardResult(int64_t rank, Module& model)>& shard, bool* stop = nullptr);
  // Copies replicas[0]'s parameters and buffers into the other replicas (after its update).
  void broadcast_parameters();

 private:
  // This process's logical ranks, in order.
  std::vector<int64_t> owned_ranks() const;

  std::vector<Module*> replicas_;
  int64_t logical_ranks_;
  dist::ProcessGroup* processes_;
  int64_t slot_floats_ = 0;  // parameters, concatenated
  // Per owned rank (in order) a record: loss sum (f64), correct (i64), scaled gradient (f32 ×
  // slot_floats_); a leading stop byte (padded to 8) — the block every process contributes.
  std::vector<std::byte> local_;
  std::vector<std::byte> gathered_;
  std::vector<float> sum_;  // one worker alone: the running rank-order sum
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
