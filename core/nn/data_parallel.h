// A logical data-parallel world (training.md §4.4.1, Singularity's replica splicing without a
// device): a job fixes L logical ranks for its life; W workers (threads here) each run a fixed
// round-robin subset of them, rank by rank. Every rank's gradient lands in its own slot and the
// slots are summed in rank order 0, 1, …, L−1, so the summed gradient — and with it every
// parameter — is bit-identical for any W: a run can continue on more or fewer workers.
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
// CPU tensors only. Not thread-safe itself; run() uses W OpenMP threads inside.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "core/nn/module.h"

namespace xp::nn {

class DataParallel {
 public:
  // replicas[w] is worker w's copy of the model, replicas[0] the one the optimizer updates; all
  // must have the same parameter and buffer shapes. 1 ≤ replicas.size() ≤ logical_ranks.
  DataParallel(std::vector<Module*> replicas, int64_t logical_ranks);

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
  ShardResult run(const std::function<ShardResult(int64_t rank, Module& model)>& shard);
  // Copies replicas[0]'s parameters and buffers into the other replicas (after its update).
  void broadcast_parameters();

 private:
  std::vector<Module*> replicas_;
  int64_t logical_ranks_;
  std::vector<std::vector<float>> slots_;  // per logical rank: its scaled gradient, parameters concatenated
};

}  // namespace xp::nn
