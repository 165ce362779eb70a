// Built without EXP_CUDA: the CUDA model reports that this build has no CUDA.
#include <stdexcept>

#include "serving/model/llama_cuda.h"

namespace xp::serving {

struct LlamaCudaModel::Impl {};

bool llama_cuda_available() { return false; }

namespace {
[[noreturn]] void no_cuda() {
  throw std::runtime_error("this exp build has no CUDA backend (configure with -DEXP_CUDA=ON where nvcc exists)");
}
}  // namespace

LlamaCudaModel::LlamaCudaModel(const LlamaModel& cpu, int64_t, int64_t) : cfg_(cpu.config()) { no_cuda(); }
LlamaCudaModel::LlamaCudaModel(const LlamaConfig& config, uint64_t, int64_t, int64_t) : cfg_(config) { no_cuda(); }
LlamaCudaModel::~LlamaCudaModel() = default;
std::vector<float> LlamaCudaModel::forward(const std::vector<ForwardItem>&) { return {}; }
int64_t LlamaCudaModel::graph_replays() const { return 0; }

}  // namespace xp::serving
