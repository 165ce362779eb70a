// The logical data-parallel world (core/nn/data_parallel.h): the summed gradient is the rank-order
// sum of the ranks' gradients, bit for bit the same for any number of workers and OpenMP threads,
// and the buffers after a step are rank 0's.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <omp.h>

#include <cstring>

#include "core/dist/thread_group.h"
#include "core/nn/activation.h"
#include "core/nn/data_parallel.h"
#include "core/nn/linear.h"
#include "core/nn/loss.h"
#include "core/nn/norm.h"
#include "core/nn/optim.h"
#include "tests/nn/gradient_check.h"

namespace xp::nn {
namespace {

using testing::random_tensor;

constexpr int64_t kRanks = 6, kRows = 9, kIn = 200, kOut = 150;

// Linear → BatchNorm (running statistics are buffers) → Tanh, each replica from the same seed.
std::unique_ptr<Sequential> model() {
  auto m = std::make_unique<Sequential>();
  runtime::RngStream rng(3, 1);
  m->add(std::make_unique<Linear>(kIn, kOut)).reset(rng);
  m->add(std::make_unique<BatchNorm>(kOut));
  m->add(std::make_unique<Tanh>());
  return m;
}

// `workers` replicas of the model and the pointers a DataParallel takes.
struct Replicas {
  explicit Replicas(int64_t workers) {
    for (int64_t w = 0; w < workers; ++w) {
      owned.push_back(model());
      pointers.push_back(owned.back().get());
    }
  }
  std::vector<std::unique_ptr<Sequential>> owned;
  std::vector<Module*> pointers;
};

// Rank r's shard: kRows rows of its own input; the gradient of the sum of its outputs.
DataParallel::ShardResult shard(int64_t rank, Module& m) {
  Tensor x = random_tensor({kRows, kIn}, 100 + static_cast<uint64_t>(rank));
  Tensor y = m.forward(x, Mode::kTrain);
  m.backward(random_tensor(y.shape(), 200 + static_cast<uint64_t>(rank)));
  return {static_cast<double>(rank), rank, 1.0f / static_cast<float>(kRanks)};
}

std::vector<std::vector<float>> grads_after_step(int64_t workers) {
  Replicas replicas(workers);
  const std::vector<Module*>& pointers = replicas.pointers;
  DataParallel dp(pointers, kRanks);
  DataParallel::ShardResult total = dp.run(shard);
  EXPECT_EQ(total.correct, 0 + 1 + 2 + 3 + 4 + 5);
  std::vector<std::vector<float>> out;
  for (auto& [name, p] : pointers[0]->parameters())
    out.emplace_back(p->grad.data<float>(), p->grad.data<float>() + p->grad.numel());
  for (auto& [name, b] : pointers[0]->buffers())
    if (b->dtype() == tensor::DType::kF32) out.emplace_back(b->data<float>(), b->data<float>() + b->numel());
  return out;
}

TEST(DataParallelTest, GradientIsTheRankOrderSumOfEachRanksGradient) {
  auto dp = grads_after_step(1);
  // By hand: each rank alone from the same start, scaled, added in rank order.
  std::vector<std::vector<float>> sum;
  for (int64_t rank = 0; rank < kRanks; ++rank) {
    auto m = model();
    m->zero_grad();
    shard(rank, *m);
    size_t k = 0;
    for (auto& [name, p] : m->parameters()) {
      if (rank == 0) sum.emplace_back(p->grad.numel(), 0.0f);
      for (int64_t i = 0; i < p->grad.numel(); ++i) {
        const float scaled = p->grad.data<float>()[i] * (1.0f / static_cast<float>(kRanks));
        sum[k][static_cast<size_t>(i)] = rank == 0 ? scaled : sum[k][static_cast<size_t>(i)] + scaled;
      }
      ++k;
    }
  }
  for (size_t k = 0; k < sum.size(); ++k) EXPECT_EQ(dp[k], sum[k]) << k;
}

TEST(DataParallelTest, AnyWorkerCountGivesBitIdenticalGradientsAndBuffers) {
  auto one = grads_after_step(1);
  for (int64_t workers : {2, 3, 4, 6}) EXPECT_EQ(grads_after_step(workers), one) << workers << " workers";
}

TEST(DataParallelTest, OpenMpThreadCountDoesNotChangeTheGradient) {
  const int before = omp_get_max_threads();
  omp_set_num_threads(1);
  auto one = grads_after_step(2);
  omp_set_num_threads(4);
  auto four = grads_after_step(2);
  omp_set_num_threads(before);
  EXPECT_EQ(one, four);
}

// Processes (here the thread backend of core/dist; the same code runs over MPI): N processes
// with W workers each give the one-process bits on every process, and a stop wanted by one
// process is known to all after the same step.
std::vector<std::vector<float>> grads_on_processes(int processes, int64_t workers_each, int stopper, std::vector<int>& stopped) {
  std::vector<std::vector<std::vector<float>>> per_process(static_cast<size_t>(processes));
  stopped.assign(static_cast<size_t>(processes), -1);
  dist::run_threads(processes, dist::Seconds(30), [&](dist::ProcessGroup& g) {
    Replicas replicas(workers_each);
    const std::vector<Module*>& pointers = replicas.pointers;
    DataParallel dp(pointers, kRanks, &g);
    for (int step = 0; step < 2; ++step) {
      bool stop = g.rank() == stopper && step == 1;
      dp.run(shard, &stop);
      dp.gather_gradients();  // each process summed its share
      if (stop && stopped[static_cast<size_t>(g.rank())] < 0) stopped[static_cast<size_t>(g.rank())] = step;
    }
    auto& out = per_process[static_cast<size_t>(g.rank())];
    for (auto& [name, p] : pointers[0]->parameters())
      out.emplace_back(p->grad.data<float>(), p->grad.data<float>() + p->grad.numel());
    for (auto& [name, b] : pointers[0]->buffers())
      if (b->dtype() == tensor::DType::kF32) out.emplace_back(b->data<float>(), b->data<float>() + b->numel());
  });
  for (int p = 1; p < processes; ++p) EXPECT_EQ(per_process[static_cast<size_t>(p)], per_process[0]) << "process " << p;
  return per_process[0];
}

TEST(DataParallelTest, ProcessesGiveTheOneProcessBitsOnEveryProcess) {
  std::vector<int> stopped;
  const auto one = grads_on_processes(1, 1, -1, stopped);
  EXPECT_EQ(grads_on_processes(2, 1, -1, stopped), one);
  EXPECT_EQ(grads_on_processes(2, 3, -1, stopped), one);
  EXPECT_EQ(grads_on_processes(4, 1, -1, stopped), one);  // 6 ranks: two processes run 2, two run 1
}

TEST(DataParallelTest, AStopWantedByOneProcessIsAgreedByAllAtTheSameStep) {
  std::vector<int> stopped;
  grads_on_processes(3, 1, 2, stopped);
  EXPECT_EQ(stopped, std::vector<int>({1, 1, 1}));
}

// Training steps across processes: each process sums and updates its share of the parameters
// (Adam here, moments included), and every process ends with the one-process parameters and,
// once gathered, moments — over shared memory and over messages alike. A process's other
// workers read the updated values themselves (shared, not copied).
std::vector<std::vector<float>> trained_on_processes(int processes, dist::RankRegions::Transport transport,
                                                     int64_t workers_each = 1) {
  std::vector<std::vector<std::vector<float>>> per_process(static_cast<size_t>(processes));
  dist::run_threads(processes, dist::Seconds(30), [&](dist::ProcessGroup& g) {
    Replicas replicas(workers_each);
    const std::vector<Module*>& pointers = replicas.pointers;
    Sequential* replica = replicas.owned[0].get();
    DataParallel dp(pointers, kRanks, &g, transport);
    Adam adam(replica->parameters(), {.weight_decay = 0.01});
    for (int step = 0; step < 3; ++step) {
      dp.run(shard);
      dp.update(adam, 0.01);
    }
    for (size_t w = 1; w < pointers.size(); ++w) {
      auto mine = replica->parameters(), theirs = pointers[w]->parameters();
      for (size_t k = 0; k < mine.size(); ++k)
        EXPECT_EQ(theirs[k].second->value.raw_data(), mine[k].second->value.raw_data()) << "worker " << w << " " << mine[k].first;
    }
    dp.gather_optimizer_state(adam);
    auto& out = per_process[static_cast<size_t>(g.rank())];
    for (auto& [name, p] : replica->parameters()) out.emplace_back(p->value.data<float>(), p->value.data<float>() + p->value.numel());
    for (auto& [name, t] : adam.state())
      if (t->dtype() == tensor::DType::kF32) out.emplace_back(t->data<float>(), t->data<float>() + t->numel());
  });
  for (int p = 1; p < processes; ++p) EXPECT_EQ(per_process[static_cast<size_t>(p)], per_process[0]) << "process " << p;
  return per_process[0];
}

TEST(DataParallelTest, ProcessesUpdatingTheirSharesEndWithTheOneProcessParametersAndMoments) {
  const auto one = trained_on_processes(1, dist::RankRegions::Transport::kAuto);
  for (auto transport : {dist::RankRegions::Transport::kAuto, dist::RankRegions::Transport::kMessages})
    for (int processes : {2, 3, 4})
      EXPECT_EQ(trained_on_processes(processes, transport), one)
          << processes << " processes over " << (transport == dist::RankRegions::Transport::kAuto ? "shared memory" : "messages");
}

TEST(DataParallelTest, WorkersReadTheUpdatedParametersAndTrainAsOneWorker) {
  const auto one = trained_on_processes(1, dist::RankRegions::Transport::kAuto);
  EXPECT_EQ(trained_on_processes(1, dist::RankRegions::Transport::kAuto, 3), one);
  EXPECT_EQ(trained_on_processes(2, dist::RankRegions::Transport::kAuto, 2), one);
}

TEST(DataParallelTest, AnOptimizerOverAnotherModelIsRefused) {
  auto replica = model(), other = model();
  DataParallel dp({replica.get()}, kRanks);
  Sgd sgd(other->parameters(), {});
  dp.run(shard);
  EXPECT_THAT([&] { dp.update(sgd, 0.1); },
              ::testing::ThrowsMessage<std::invalid_argument>(::testing::HasSubstr("not over the first replica's parameters")));
}

TEST(DataParallelTest, BuffersAfterAStepAreRankZeros) {
  auto replica = model();
  DataParallel dp({replica.get()}, kRanks);
  dp.run(shard);
  auto alone = model();
  alone->zero_grad();
  shard(0, *alone);
  auto a = replica->buffers(), b = alone->buffers();
  ASSERT_EQ(a.size(), b.size());
  for (size_t k = 0; k < a.size(); ++k)
    EXPECT_EQ(std::memcmp(a[k].second->raw_data(), b[k].second->raw_data(), a[k].second->nbytes()), 0) << a[k].first;
}

TEST(DataParallelTest, MoreWorkersThanRanksIsRefused) {
  auto a = model(), b = model(), c = model();
  EXPECT_THAT([&] { DataParallel({a.get(), b.get(), c.get()}, 2); },
              ::testing::ThrowsMessage<std::invalid_argument>(::testing::HasSubstr("between 1 and the 2 logical ranks")));
}

TEST(DataParallelTest, AFailingShardIsReportedNotSwallowed) {
  auto a = model(), b = model();
  DataParallel dp({a.get(), b.get()}, 4);
  EXPECT_THROW(dp.run([](int64_t rank, Module& m) -> DataParallel::ShardResult {
    if (rank == 3) throw std::runtime_error("shard 3 failed");
    return shard(rank, m);
  }),
               std::runtime_error);
}

}  // namespace
}  // namespace xp::nn
