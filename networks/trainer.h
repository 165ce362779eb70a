// The mini-batch training loop of the topology and DynaQuant experiments, resumable exactly: the
// batch order of epoch e is a seeded permutation that depends on (seed, e) alone, and state()
// captures the model, the optimizer and the loop position, so a run restored from state()
// continues bit for bit — with any number of workers (TrainOptions::workers), since on the CPU
// each batch runs as a logical data-parallel world. One Trainer per Network; not thread-safe.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/data/dataset.h"
#include "core/nn/data_parallel.h"
#include "core/nn/optim.h"
#include "core/nn/state_dict.h"
#include "networks/network.h"

namespace xp::networks {

struct TrainOptions {
  int64_t epochs = 20;
  int64_t batch_size = 200;           // the notebook's batch
  std::string optimizer = "adam";     // optimizer_names(): adam | adamw (decoupled decay) | sgd
  double lr = 1e-3;
  double momentum = 0.9;              // sgd only
  double weight_decay = 0.0;          // L2 (adam, sgd) or AdamW's decoupled decay (adamw)
  std::string schedule = "constant";  // constant | cosine (over all steps)
  std::string device = "cpu";         // cpu | cuda: where the model trains (the Trainer moves it)
  // The logical data-parallel world (core/nn/data_parallel.h): each batch is split into
  // `logical_ranks` contiguous shards whose gradients are summed in rank order, run by `workers`
  // threads (1 ≤ workers ≤ logical_ranks). Results depend on logical_ranks, never on workers.
  int64_t logical_ranks = 1;
  int64_t workers = 1;  // 0: as many as this process has cores for, up to logical_ranks
  double collective_timeout_s = 600;  // launched: a process silent this long ends the run, named
};

struct StepResult {
  double loss = 0.0;
  int64_t correct = 0;
  int64_t samples = 0;
  bool stop = false;  // some process asked to stop: every process sees it after the same step
};

// The values of TrainOptions::optimizer, for the experiments' config checks.
const std::vector<std::string>& optimizer_names();

class Trainer {
 public:
  // `processes`: the launch's processes training this net together (null: this process alone);
  // logical ranks are spread over them, and every process holds the same parameters.
  Trainer(Network& net, TrainOptions options, uint64_t seed, dist::ProcessGroup* processes = nullptr);
  int64_t epoch() const { return epoch_; }  // epochs completed
  int64_t batch() const { return batch_; }  // batches done in the current epoch
  int64_t batches_per_epoch(const data::Dataset& train) const;
  bool done() const { return epoch_ >= opt_.epochs; }
  // One optimizer step on the next mini-batch; moves to the next epoch after its last batch.
  // `stop`: this process wants to stop (a signal); the result says whether any process does,
  // the vote riding on the step's gradient exchange (the consistent cut, docs/parallelism.md).
  StepResult step(const data::Dataset& train, bool stop = false);
  // The last step's summed gradient, whole, in the network's parameters. Across processes each
  // sums only its share (nn::DataParallel), so this is a collective there: every process calls it.
  void gather_gradients();

  // The model, the optimizer and the loop position. Across processes, the first call after a step
  // is a collective (it gathers the optimizer's moments from the processes that keep them):
  // every process makes it.
  nn::StateDict state();
  // Throws nn::StateDictError when the state belongs to another network or optimizer.
  void load(const nn::StateDict& sd);

 private:
  Network& net_;
  TrainOptions opt_;
  uint64_t seed_;
  std::unique_ptr<nn::Optimizer> optimizer_;
  std::unique_ptr<nn::TrainingWorld> world_;  // the logical ranks' workers and processes (CPU only)
  int64_t epoch_ = 0, batch_ = 0;
  int64_t total_steps_ = 0;  // for the cosine schedule; set on the first step
  std::vector<int64_t> order_;
  int64_t order_epoch_ = -1;
  bool state_whole_ = true;  // the optimizer's moments are whole on this process (none stepped since)
};

// Dense evaluation in eval mode (on the model's device): accuracy and mean NLL over `d`. On the
// CPU its batches run on the cores at once, with the one-thread result on any thread count.
struct Evaluation {
  double accuracy = 0.0;
  double loss = 0.0;
  std::vector<int32_t> predictions;
};
Evaluation evaluate(Network& net, const data::Dataset& d, int64_t batch_size = 1000);

}  // namespace xp::networks
