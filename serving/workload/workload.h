// Request generators (docs/serving_simulator.md): lengths from a trace, fixed, uniform or zipf; arrivals
// Poisson (inter-arrivals clipped at 3× the mean, as Vidur does), gamma, static (all at 0) or
// from the trace's arrived_at column. Seeded from the run's RNG streams and streamed one request
// at a time, so a million-request simulation never holds the list.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/config/reader.h"
#include "core/runtime/rng.h"
#include "serving/scheduler/sequence.h"

namespace xp::serving {

// A workload's request count is bounded so that every run ends: 10^8 requests simulate in about
// half an hour at the simulator's rate. Larger studies are several runs (or a sweep over seeds).
inline constexpr double kMaxRequests = 1e8;

struct WorkloadConfig {
  int64_t num_requests = 1000;
  std::string lengths = "trace";        // trace | fixed | uniform | zipf
  std::string trace_file;               // CSV with num_prefill_tokens, num_decode_tokens[, arrived_at]
  bool shuffle_trace = true;            // Vidur shuffles trace lengths with the seed
  int64_t prompt_tokens = 512;          // fixed
  int64_t decode_tokens = 128;          // fixed
  int64_t min_tokens = 16;              // uniform / zipf: total tokens, split by prefill_to_decode
  int64_t max_tokens = 4096;            // every request is clipped to this many tokens in all
  double prefill_to_decode = 4.0;       // uniform / zipf: P:D ratio
  double zipf_theta = 0.4;              // zipf exponent
  std::string arrivals = "poisson";     // poisson | gamma | static | trace
  double qps = 1.0;                     // mean arrival rate (poisson, gamma)
  double cv = 0.5;                      // gamma: coefficient of variation of inter-arrivals
  double time_scale = 1.0;              // trace arrivals: arrived_at × time_scale

  static WorkloadConfig from(const config::ConfigReader& r, const std::filesystem::path& data_root);
};

class RequestGenerator {
 public:
  // Loads the trace (if any) now: a bad file or row is an error before the simulation starts.
  RequestGenerator(const WorkloadConfig& cfg, uint64_t seed);
  std::optional<Request> next();  // in arrival order; nullopt after num_requests
  const WorkloadConfig& config() const { return cfg_; }

 private:
  std::pair<int64_t, int64_t> lengths(uint64_t i);
  double next_gap();

  WorkloadConfig cfg_;
  runtime::RngStream len_rng_, arrival_rng_;
  std::vector<std::pair<int64_t, int64_t>> trace_lengths_;
  std::vector<double> trace_arrivals_;
  std::vector<double> zipf_cdf_;
  uint64_t emitted_ = 0;
  double clock_ = 0;
};

// Vidur's clipping: P <= max_tokens - 1, then D <= max_tokens - P (and D >= 1).
std::pair<int64_t, int64_t> clip_lengths(int64_t prompt, int64_t decode, int64_t max_tokens);

}  // namespace xp::serving
