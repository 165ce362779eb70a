// The NCCL backend under the same checks as threads and MPI (label cuda: runs where a GPU is
// lent; one rank per GPU, so two ranks need two GPUs), bootstrapped over the thread backend.
// NcclWithoutGpu runs everywhere (unit).
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include "core/dist/nccl_group.h"
#include "core/dist/thread_group.h"
#include "tests/dist/group_checks.h"

namespace xp::dist {
namespace {

int gpus() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}

// `check` on an NCCL group of `ranks` ranks, rank r on GPU r.
void on_nccl(int ranks, void (*check)(ProcessGroup&)) {
  if (gpus() < ranks) GTEST_SKIP() << ranks << " ranks need " << ranks << " GPUs; " << gpus() << " visible";
  run_threads(ranks, Seconds(60), [&](ProcessGroup& boot) {
    auto g = nccl_group(boot, boot.rank(), Seconds(60));
    check(*g);
  });
}

class Nccl : public ::testing::TestWithParam<int> {};

TEST_P(Nccl, AllGatherConcatenatesInRankOrder) { on_nccl(GetParam(), checks::all_gather_concatenates_in_rank_order); }
TEST_P(Nccl, AllReduceSumsInRankOrderOnEveryRank) { on_nccl(GetParam(), checks::all_reduce_sums_in_rank_order_on_every_rank); }
TEST_P(Nccl, BroadcastSendsRootsBytesOfAnyLength) { on_nccl(GetParam(), checks::broadcast_sends_roots_bytes_of_any_length); }
TEST_P(Nccl, SendAndRecvAroundARing) { on_nccl(GetParam(), checks::send_and_recv_around_a_ring); }
TEST_P(Nccl, SplitMakesGroupsOfTheSameColor) { on_nccl(GetParam(), checks::split_makes_groups_of_the_same_color); }

INSTANTIATE_TEST_SUITE_P(Ranks, Nccl, ::testing::Values(1, 2));

TEST(NcclWithoutGpu, MakingAGroupSaysWhatIsMissing) {
  if (gpus() > 0) GTEST_SKIP() << "a GPU is visible";
  EXPECT_FALSE(nccl_available());
  try {
    run_threads(1, Seconds(5), [](ProcessGroup& boot) { nccl_group(boot, 0, Seconds(5)); });
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    const std::string what = e.what();
    EXPECT_TRUE(what.find("none is visible") != std::string::npos || what.find("without NCCL") != std::string::npos) << what;
  }
}

}  // namespace
}  // namespace xp::dist
