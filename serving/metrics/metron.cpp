#include "serving/metrics/metron.h"

#include <cmath>
#include <stdexcept>

namespace xp::serving {

std::vector<double> inter_token_times(double arrival_s, const std::vector<double>& token_times) {
  std::vector<double> itt;
  itt.reserve(token_times.size());
  double prev = arrival_s;
  for (double t : token_times) {
    itt.push_back(t - prev);
    prev = t;
  }
  return itt;
}

DeadlineMisses deadline_misses(const std::vector<double>& itt, double d_p, double d_d, bool ignore_first) {
  DeadlineMisses r;
  double slack = 0;
  for (size_t i = 0; i < itt.size(); ++i) {
    double t = itt[i];
    int64_t k;
    if (i == 0) {
      if (ignore_first) continue;
      if (t <= d_p + slack) {
        slack += d_p - t;
        ++r.total;
        continue;
      }
      k = 1 + static_cast<int64_t>(std::floor((t - slack - d_p) / d_d));
    } else {
      if (t <= d_d + slack) {
        slack += d_d - t;
        ++r.total;
        continue;
      }
      k = static_cast<int64_t>(std::floor((t - slack) / d_d));
    }
    r.missed += k;
    r.total += k;
    slack = 0;  // every deadline passed during the stall is missed, and later ones shift
  }
  return r;
}

double min_tbt_deadline(const std::vector<double>& tbts, double target) {
  std::vector<double> itt;
  itt.reserve(tbts.size() + 1);
  itt.push_back(0.0);
  itt.insert(itt.end(), tbts.begin(), tbts.end());
  constexpr double kGranularity = 1e-4;
  double lo = 0, hi = 1e10, best = hi;
  while (lo <= hi) {
    double mid = (lo + hi) / 2;
    if (deadline_misses(itt, 0.0, mid, /*ignore_first=*/true).miss_rate() > target) {
      lo = mid + kGranularity;
    } else {
      best = mid;
      hi = mid - kGranularity;
    }
  }
  return best;
}

RequestLatency request_latency(const std::vector<double>& itt) {
  RequestLatency r;
  if (itt.empty()) return r;
  r.ttft = itt[0];
  double decode = 0;
  for (size_t i = 1; i < itt.size(); ++i) decode += itt[i];
  r.e2e = itt[0] + decode;
  if (itt.size() >= 2) r.tpot = decode / static_cast<double>(itt.size() - 1);
  r.normalized_e2e = r.e2e / static_cast<double>(itt.size());
  return r;
}

std::vector<double> expand_bursts(const std::vector<double>& gaps, const std::vector<int64_t>& tokens_per_chunk) {
  if (gaps.size() != tokens_per_chunk.size()) throw std::invalid_argument("one token count per streamed chunk");
  std::vector<double> out;
  for (size_t i = 0; i < gaps.size(); ++i) {
    out.push_back(gaps[i]);
    for (int64_t k = 1; k < tokens_per_chunk[i]; ++k) out.push_back(0.0);
  }
  return out;
}

}  // namespace xp::serving
