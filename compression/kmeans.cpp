#include "compression/kmeans.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "core/runtime/rng.h"

namespace xp::compression {

namespace {
// Draws an index with probability ∝ p[i] (p not all zero).
size_t draw(const std::vector<double>& p, runtime::RngStream& rng) {
  double total = 0.0;
  for (double v : p) total += v;
  double u = rng.uniform() * total;
  for (size_t i = 0; i < p.size(); ++i) {
    if (u < p[i]) return i;
    u -= p[i];
  }
  for (size_t i = p.size(); i-- > 0;)
    if (p[i] > 0) return i;
  return 0;
}

// Weighted k-means++ seeding: the next centre drawn ∝ W·D^power.
std::vector<double> seed_centres(const std::vector<double>& x, const std::vector<double>& w, size_t k, const KMeansOptions& o,
                                 uint64_t restart) {
  const size_t n = x.size();
  runtime::RngStream rng(o.seed, 0x6b6d65616e73 + restart);  // "kmeans"
  std::vector<double> centres{x[draw(w, rng)]};
  while (centres.size() < k) {
    std::vector<double> p(n);
    for (size_t i = 0; i < n; ++i) {
      double d = 1e300;
      for (double c : centres) d = std::min(d, std::fabs(x[i] - c));
      p[i] = w[i] * std::pow(d, o.distance_power);
    }
    if (std::all_of(p.begin(), p.end(), [](double v) { return v == 0.0; })) break;  // all buckets are centres
    centres.push_back(x[draw(p, rng)]);
  }
  return centres;
}

// Weighted Lloyd iterations from `centres` until assignments settle; *error is the weights'
// own quantization error Σ count·(x − centre)² (not the clustering weights W).
// Buckets and centres are 1-D, so centres stay sorted and assignment walks the midpoints.
std::vector<double> lloyd(const std::vector<double>& x, const std::vector<double>& w, const std::vector<double>& count,
                          std::vector<double> centres, int max_iterations, double* error) {
  const size_t n = x.size();
  std::sort(centres.begin(), centres.end());
  std::vector<size_t> assign(n, SIZE_MAX);
  auto assign_all = [&] {
    bool changed = false;
    size_t c = 0;
    for (size_t i = 0; i < n; ++i) {  // x ascending: the nearest centre index never decreases
      while (c + 1 < centres.size() && std::fabs(x[i] - centres[c + 1]) < std::fabs(x[i] - centres[c])) ++c;
      changed = changed || assign[i] != c;
      assign[i] = c;
    }
    return changed;
  };
  for (int it = 0; it < max_iterations && assign_all(); ++it) {
    std::vector<double> num(centres.size(), 0.0), den(centres.size(), 0.0);
    for (size_t i = 0; i < n; ++i) {
      num[assign[i]] += w[i] * x[i];
      den[assign[i]] += w[i];
    }
    for (size_t j = 0; j < centres.size(); ++j)
      if (den[j] > 0) centres[j] = num[j] / den[j];
    std::sort(centres.begin(), centres.end());
  }
  assign_all();
  *error = 0.0;
  for (size_t i = 0; i < n; ++i) *error += count[i] * (x[i] - centres[assign[i]]) * (x[i] - centres[assign[i]]);
  return centres;
}

}  // namespace

std::vector<float> kmeans_levels(const LogHistogram& histogram, const KMeansOptions& o) {
  if (o.bins < 1) throw std::invalid_argument(fmt::format("kmeans: bins must be ≥ 1, got {}", o.bins));
  const auto buckets = histogram.buckets();
  const size_t n = buckets.size();
  if (n == 0) return {};
  std::vector<double> x(n), w(n), count(n);
  double sum_c = 0.0, sum_x = 0.0;
  for (const auto& b : buckets) {
    sum_c += static_cast<double>(b.count);
    sum_x += std::fabs(b.centre);
  }
  for (size_t i = 0; i < n; ++i) {
    x[i] = buckets[i].centre;
    count[i] = static_cast<double>(buckets[i].count);
    w[i] = o.sigma * static_cast<double>(buckets[i].count) / sum_c +
           (1.0 - o.sigma) * (sum_x > 0 ? std::fabs(x[i]) / sum_x : 1.0 / static_cast<double>(n));
    if (w[i] <= 0.0) w[i] = 1e-12;  // the zero bucket keeps a tiny weight: it can still be chosen
  }
  const size_t k = std::min(static_cast<size_t>(o.bins), n);
  // Several seedings (streams of the seed), the one whose levels quantize the weights with the
  // least squared error kept: one seeding can put two seeds in one cluster, and Lloyd only ever
  // finds the nearest local optimum. (Choosing by the clustering weights W instead favours the
  // tails and costs accuracy at many levels.)
  std::vector<double> centres;
  double best_error = INFINITY;
  for (int restart = 0; restart < std::max(1, o.restarts); ++restart) {
    double error = 0.0;
    std::vector<double> c =
        lloyd(x, w, count, seed_centres(x, w, k, o, static_cast<uint64_t>(restart)), o.max_iterations, &error);
    if (error < best_error) best_error = error, centres = std::move(c);
  }
  std::vector<float> out(centres.begin(), centres.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace xp::compression
