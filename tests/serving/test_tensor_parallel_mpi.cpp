// Tensor parallelism across OpenMPI processes (mpirun -np 2 and 4; CTest label mpi): the same
// checks as on threads. Each rank writes the same random model (same seed) to a folder of its own.
#include <gtest/gtest.h>

#include "core/dist/launch.h"
#include "tests/serving/tensor_parallel_checks.h"
#include "tests/support/temp_dir.h"

namespace xp::serving {
namespace {

dist::ProcessGroup& world() {
  static std::unique_ptr<dist::ProcessGroup> w = dist::mpi_world(dist::Seconds(60));
  return *w;
}

class TensorParallelMpi : public ::testing::Test {
 protected:
  void SetUp() override { write_random_llama(dir_.path(), tp_checks::model_config(), 11); }
  testing::TempDir dir_;
};

TEST_F(TensorParallelMpi, ForwardMatchesTheWholeModel) { tp_checks::forward_matches_the_whole_model(world(), dir_.path()); }
TEST_F(TensorParallelMpi, KvParallelForwardMatchesTheWholeModel) {
  tp_checks::kv_parallel_forward_matches_the_whole_model(world(), dir_.path());
}
TEST_F(TensorParallelMpi, KvParallelEngineServesTheSameGreedyTokens) {
  tp_checks::model_parallel_engine_serves_the_same_greedy_tokens(world(), dir_.path(), {world().size() / 2, 2, 1});
  world().barrier();
}
TEST_F(TensorParallelMpi, SequencePipelineStagesServeTheSameGreedyTokens) {
  tp_checks::model_parallel_engine_serves_the_same_greedy_tokens(world(), dir_.path(), {1, world().size() / 2, 2}, true);
  world().barrier();
}
TEST_F(TensorParallelMpi, EngineServesTheSameGreedyTokens) {
  tp_checks::engine_serves_the_same_greedy_tokens(world(), dir_.path());
  world().barrier();
}

}  // namespace
}  // namespace xp::serving
