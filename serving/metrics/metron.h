// Metron's metrics (docs/metrics.md), computed from per-request inter-token times `itt` so the
// simulator and the engine share one implementation: itt[0] is the TTFT (first token minus
// arrival), itt[k] the gap before token k. They follow Metron's metric_utils.py operation for
// operation in IEEE double — Python's float floor division included (python_floor_div) and its
// bisection's bounds — so that they agree with it bit for bit (tests/serving/test_metron.cpp
// holds worked examples computed by Metron's functions).
#pragma once
#include <cstdint>
#include <vector>

namespace xp::serving {

// itt from an arrival time and the emit time of every output token.
std::vector<double> inter_token_times(double arrival_s, const std::vector<double>& token_times);

struct DeadlineMisses {
  int64_t missed = 0;
  int64_t total = 0;
  double miss_rate() const { return total ? static_cast<double>(missed) / static_cast<double>(total) : 0.0; }
  double fluidity_index() const { return 1.0 - miss_rate(); }
};

// Deadlines with slack carried forward; a late token counts every deadline that elapsed.
// `ttft_deadline` is D_p, `tbt_deadline` D_d; ignore_first drops the TTFT from the count.
DeadlineMisses deadline_misses(const std::vector<double>& itt, double ttft_deadline, double tbt_deadline,
                               bool ignore_first = false);

// a // b for doubles as Python computes it (1.0 // 0.1 == 9.0, not floor(1.0 / 0.1) == 10).
double python_floor_div(double a, double b);

// The smallest TBT deadline whose miss rate (TTFT ignored) is <= target, by Metron's
// binary search over [0, 1e10] s at 1e-4 s granularity, as its get_throughput_metrics calls it
// (on [0] + tbts). `tbts` are itt[1:]. 1e10 when no deadline meets the target.
double min_tbt_deadline(const std::vector<double>& tbts, double target_miss_rate = 0.1);

// The same search as Metron's MetricStore runs it per request: on the whole itt, the TTFT
// counted against `ttft_deadline` (the prefill deadline), so a late first token can keep any
// TBT deadline from meeting the target (then 1e10).
double min_tbt_deadline_counting_ttft(const std::vector<double>& itt, double ttft_deadline, double target_miss_rate = 0.1);

struct RequestLatency {
  double ttft = 0, tpot = 0, e2e = 0, normalized_e2e = 0;
  double decode_time_normalized = 0;  // Vidur's name: the same decode time over all N tokens
};
// TTFT = itt[0], TPOT = mean(itt[1:]) (Metron: the decode time over the N − 1 gaps after
// the first token), E2E = Σ itt, normalized E2E = E2E / tokens. Vidur's per-request decode figure
// (decode_time_execution_plus_preemption_normalized) divides the same time by N.
RequestLatency request_latency(const std::vector<double>& itt);

// A streamed chunk carrying m tokens counts as one gap followed by m-1 zero gaps.
std::vector<double> expand_bursts(const std::vector<double>& gaps, const std::vector<int64_t>& tokens_per_chunk);

}  // namespace xp::serving
