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

double python_floor_div(double a, double b) {
  // CPython's float floor division (Objects/floatobject.c, _float_div_mod): the quotient of a
  // minus its remainder, so 1.0 // 0.1 is 9.0 where floor(1.0 / 0.1) is 10.
  double mod = std::fmod(a, b);
  double div = (a - mod) / b;
  if (mod != 0.0 && ((b < 0) != (mod < 0))) div -= 1.0;
  if (div == 0.0) return std::copysign(0.0, a / b);
  double floordiv = std::floor(div);
  if (div - floordiv > 0.5) floordiv += 1.0;
  return floordiv;
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
      k = 1 + static_cast<int64_t>(python_floor_div(t - slack - d_p, d_d));
    } else {
      if (t <= d_d + slack) {
        slack += d_d - t;
        ++r.total;
        continue;
      }
      k = static_cast<int64_t>(python_floor_div(t - slack, d_d));
    }
    r.missed += k;
    r.total += k;
    slack = 0;  // every deadline passed during the stall is missed, and later ones shift
  }
  return r;
}

namespace {

// Metron's find_min_tbt_deadline_to_meet: bisection over [0, 1e10] s that narrows by its 1e-4 s
// granularity on each side and stops once the interval is no wider than it.
double bisect_min_tbt_deadline(const std::vector<double>& itt, double ttft_deadline, double target, bool ignore_first) {
  constexpr double kGranularity = 1e-4;
  double left = 0, right = 1e10, deadline = 1e10;
  while (right - left > kGranularity) {
    const double mid = (left + right) / 2;
    if (deadline_misses(itt, ttft_deadline, mid, ignore_first).miss_rate() > target) {
      left = mid + kGranularity;
    } else {
      deadline = mid;
      right = mid - kGranularity;
    }
  }
  return deadline;
}

}  // namespace

double min_tbt_deadline(const std::vector<double>& tbts, double target) {
  std::vector<double> itt;
  itt.reserve(tbts.size() + 1);
  itt.push_back(0.0);
  itt.insert(itt.end(), tbts.begin(), tbts.end());
  return bisect_min_tbt_deadline(itt, 0.0, target, /*ignore_first=*/true);
}

double min_tbt_deadline_counting_ttft(const std::vector<double>& itt, double ttft_deadline, double target) {
  return bisect_min_tbt_deadline(itt, ttft_deadline, target, /*ignore_first=*/false);
}

RequestLatency request_latency(const std::vector<double>& itt) {
  RequestLatency r;
  if (itt.empty()) return r;
  r.ttft = itt[0];
  double decode = 0;
  for (size_t i = 1; i < itt.size(); ++i) decode += itt[i];
  r.e2e = itt[0] + decode;
  if (itt.size() >= 2) r.tpot = decode / static_cast<double>(itt.size() - 1);
  r.decode_time_normalized = decode / static_cast<double>(itt.size());
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
