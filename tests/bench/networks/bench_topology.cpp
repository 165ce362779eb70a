// The topology experiments' CPU throughput, for bench/binarized_train.sh: one epoch of
// Fashion-MNIST training (batch 200, Adam) of the 784-1024-1024-10 {0,1} net and of the dense
// float MLP of the same shape, and the evaluation of the test set by the dense net and by the
// sparse topology at < 1% active weights. Prints one JSON object.
//   bench_topology DATA_DIR THREADS [SAMPLES]
#include <fmt/format.h>
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "networks/topology.h"
#include "networks/trainer.h"

using namespace xp;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double epoch_samples_per_s(const std::string& method, const data::Dataset& train) {
  networks::NetworkSpec spec;
  spec.method = method;
  networks::Network net(spec, 0);
  // As `exp run` trains by default: 2 logical ranks, one worker thread per core.
  networks::Trainer trainer(net, {.epochs = 1, .logical_ranks = 2, .workers = 0}, 0);
  const auto t0 = Clock::now();
  while (!trainer.done()) trainer.step(train);
  return static_cast<double>(train.size()) / seconds_since(t0);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: bench_topology DATA_DIR THREADS [SAMPLES]\n");
    return 2;
  }
  omp_set_num_threads(std::stoi(argv[2]));
  data::Dataset train = data::load_fashion_mnist(argv[1], "train");
  data::Dataset test = data::load_fashion_mnist(argv[1], "test");
  if (argc > 3) train = data::sample(train, std::stoll(argv[3]), runtime::RngStream(0, 0));
  data::binarize(train);
  data::binarize(test);

  const double binarized = epoch_samples_per_s("binarized", train);
  const double float_mlp = epoch_samples_per_s("float_mlp", train);

  // Evaluation at 0.5% active weights (latent Bernoulli(0.005)), dense vs sparse, best of 3.
  networks::NetworkSpec spec;
  spec.init_p = 0.005;
  networks::Network net(spec, 1);
  networks::Topology topo(net);
  double dense = 1e9, sparse = 1e9;
  for (int rep = 0; rep < 3; ++rep) {
    auto t0 = Clock::now();
    auto d = networks::evaluate(net, test);
    dense = std::min(dense, seconds_since(t0));
    t0 = Clock::now();
    auto s = topo.predict(test, 1.0f);
    sparse = std::min(sparse, seconds_since(t0));
    if (networks::agreement(d.predictions, s) < 0.999) {
      std::fprintf(stderr, "sparse and dense evaluation disagree\n");
      return 1;
    }
  }
  const double active = static_cast<double>(topo.active()) / static_cast<double>(net.module().num_parameters());
  std::printf("{\"binarized\": %.1f, \"float_mlp\": %.1f, \"dense_eval_s\": %.5f, \"sparse_eval_s\": %.5f, "
              "\"active_share\": %.5f}\n", binarized, float_mlp, dense, sparse, active);
  return 0;
}
