#include "serving/sim/global_scheduler.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <stdexcept>

#include "core/runtime/rng.h"

namespace xp::serving {
namespace {

class RoundRobin final : public GlobalScheduler {
 public:
  int64_t route(std::span<const ReplicaScheduler* const> replicas) override {
    return static_cast<int64_t>(next_++ % replicas.size());
  }

 private:
  uint64_t next_ = 0;
};

class Random final : public GlobalScheduler {
 public:
  explicit Random(uint64_t seed) : rng_(seed, 201) {}
  int64_t route(std::span<const ReplicaScheduler* const> replicas) override {
    return static_cast<int64_t>(rng_.below(replicas.size()));
  }

 private:
  runtime::RngStream rng_;
};

// Least outstanding requests: the replica with the fewest waiting; the lowest index on ties.
class LeastOutstanding final : public GlobalScheduler {
 public:
  int64_t route(std::span<const ReplicaScheduler* const> replicas) override {
    size_t best = 0;
    for (size_t i = 1; i < replicas.size(); ++i)
      if (replicas[i]->num_waiting() < replicas[best]->num_waiting()) best = i;
    return static_cast<int64_t>(best);
  }
};

template <class T>
std::unique_ptr<GlobalScheduler> make(uint64_t seed) {
  if constexpr (std::is_constructible_v<T, uint64_t>) return std::make_unique<T>(seed);
  else return std::make_unique<T>();
}

}  // namespace

const std::vector<GlobalSchedulerType>& global_scheduler_types() {
  static const std::vector<GlobalSchedulerType> all = {
      {"round_robin", "arrivals go to the replicas in turn", make<RoundRobin>},
      {"random", "each arrival to a replica drawn uniformly (seeded by the run)", make<Random>},
      {"lor", "least outstanding requests: the replica with the fewest waiting", make<LeastOutstanding>},
  };
  return all;
}

std::vector<std::string> global_scheduler_names() {
  std::vector<std::string> out;
  for (const auto& t : global_scheduler_types()) out.push_back(t.name);
  return out;
}

std::unique_ptr<GlobalScheduler> make_global_scheduler(const std::string& name, uint64_t seed) {
  for (const auto& t : global_scheduler_types())
    if (t.name == name) return t.make(seed);
  throw std::invalid_argument(
      fmt::format("no global scheduler '{}' (registered: {})", name, fmt::join(global_scheduler_names(), ", ")));
}

}  // namespace xp::serving
