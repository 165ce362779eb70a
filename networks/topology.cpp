#include "networks/topology.h"

#include <Eigen/Core>

#include <bit>
#include <cmath>
#include <stdexcept>

#include "core/nn/norm.h"

namespace xp::networks {

namespace {

constexpr int64_t kChunk = 128;  // samples per pass: a chunk of 784 input rows stays in L2

// Folds a norm layer at evaluation into per-unit α, β.
void fold_norm(nn::Module& norm, TopologyLayer& L) {
  L.alpha.assign(static_cast<size_t>(L.out), 1.0f);
  L.beta.assign(static_cast<size_t>(L.out), 0.0f);
  if (dynamic_cast<nn::HardInvert*>(&norm)) {
    std::fill(L.alpha.begin(), L.alpha.end(), -1.0f);
    std::fill(L.beta.begin(), L.beta.end(), 1.0f);
  } else if (auto* s = dynamic_cast<nn::SoftInvert*>(&norm)) {
    const auto a = static_cast<float>(s->effective_a());
    std::fill(L.alpha.begin(), L.alpha.end(), 1.0f - 2.0f * a);
    std::fill(L.beta.begin(), L.beta.end(), a);
  } else if (auto* bn = dynamic_cast<nn::BatchNorm*>(&norm)) {
    const float* mean = bn->running_mean().data<float>();
    const float* var = bn->running_var().data<float>();
    for (int64_t j = 0; j < L.out; ++j) {
      const float g = bn->weight() ? bn->weight()->value.data<float>()[j] : 1.0f;
      const float b = bn->bias() ? bn->bias()->value.data<float>()[j] : 0.0f;
      const auto a = static_cast<float>(g / std::sqrt(static_cast<double>(var[j]) + bn->options().eps));
      L.alpha[static_cast<size_t>(j)] = a;
      L.beta[static_cast<size_t>(j)] = b - a * mean[j];
    }
  } else {
    throw std::invalid_argument("Topology: unsupported norm " + norm.describe());
  }
}

// The dataset's samples [begin, begin+n) as a feature-major [features, n] block, transposed in
// 16×16 tiles so both sides stay in cache.
std::vector<float> transpose_chunk(const data::Dataset& d, int64_t begin, int64_t n) {
  const int64_t f = d.sample_size();
  std::vector<float> out(static_cast<size_t>(f * n));
  const float* in = d.features.data() + begin * f;
  constexpr int64_t kTile = 16;
  for (int64_t s0 = 0; s0 < n; s0 += kTile)
    for (int64_t i0 = 0; i0 < f; i0 += kTile)
      for (int64_t s = s0; s < std::min(n, s0 + kTile); ++s)
        for (int64_t i = i0; i < std::min(f, i0 + kTile); ++i) out[static_cast<size_t>(i * n + s)] = in[s * f + i];
  return out;
}

// sum[s] = Σ over unit j's active inputs i of x[i, s]; x is [in, n] feature-major. Four input
// rows per pass over `sum` quarter its loads and stores.
inline void fan_in_sum(const TopologyLayer& L, int64_t j, const float* x, int64_t n, float* __restrict sum) {
  std::fill(sum, sum + n, 0.0f);
  int64_t k = L.start[static_cast<size_t>(j)];
  const int64_t end = L.start[static_cast<size_t>(j) + 1];
  auto row = [&](int64_t at) { return x + static_cast<int64_t>(L.inputs[static_cast<size_t>(at)]) * n; };
  for (; k + 4 <= end; k += 4) {
    const float* __restrict a = row(k);
    const float* __restrict b = row(k + 1);
    const float* __restrict c = row(k + 2);
    const float* __restrict e = row(k + 3);
#pragma omp simd
    for (int64_t s = 0; s < n; ++s) sum[s] += (a[s] + b[s]) + (c[s] + e[s]);
  }
  for (; k < end; ++k) {
    const float* __restrict a = row(k);
#pragma omp simd
    for (int64_t s = 0; s < n; ++s) sum[s] += a[s];
  }
}

}  // namespace

Topology::Topology(Network& net) {
  if (net.binary_layers().empty()) throw std::invalid_argument("Topology: needs a binarized network");
  for (size_t l = 0; l < net.binary_layers().size(); ++l) {
    const BinaryLinear& b = *net.binary_layers()[l];
    TopologyLayer L;
    L.in = b.in_features();
    L.out = b.out_features();
    const float* w = b.latent().value.data<float>();
    L.start.push_back(0);
    for (int64_t j = 0; j < L.out; ++j) {
      for (int64_t i = 0; i < L.in; ++i)
        if (is_active(w[j * L.in + i])) L.inputs.push_back(static_cast<int32_t>(i));
      L.start.push_back(static_cast<int64_t>(L.inputs.size()));
    }
    fold_norm(*net.norms()[l], L);
    layers_.push_back(std::move(L));
  }
  on_ = net.on();
}

int64_t Topology::active() const {
  int64_t n = 0;
  for (const auto& L : layers_) n += L.active();
  return n;
}

template <class Visit>
void Topology::propagate(const data::Dataset& d, float on, bool parallel, Visit visit) const {
  // Chunks are independent: with `parallel` each thread takes whole chunks (visit must then only
  // write its chunk's own outputs); otherwise chunks run in order.
  const int64_t chunks = (d.size() + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(dynamic) if (parallel)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t begin = c * kChunk, n = std::min(kChunk, d.size() - begin);
    std::vector<float> x = transpose_chunk(d, begin, n);
    std::vector<float> sum(static_cast<size_t>(n));
    for (size_t l = 0; l < layers_.size(); ++l) {
      const TopologyLayer& L = layers_[l];
      std::vector<float> y(static_cast<size_t>(L.out * n));
      for (int64_t j = 0; j < L.out; ++j) {
        fan_in_sum(L, j, x.data(), n, sum.data());
        const float a = L.alpha[static_cast<size_t>(j)], b = L.beta[static_cast<size_t>(j)];
        float* out = y.data() + j * n;
        // Eigen's vectorised tanh, as in nn::Tanh: sparse and dense evaluation agree.
        Eigen::Map<Eigen::ArrayXf>(out, n) = a * (on * Eigen::Map<const Eigen::ArrayXf>(sum.data(), n)).tanh() + b;
      }
      visit(l, x, y, begin, n);
      x = std::move(y);
    }
  }
}

std::vector<float> Topology::scores(const data::Dataset& d, float on) const {
  const int64_t classes = layers_.back().out;
  std::vector<float> out(static_cast<size_t>(d.size() * classes));
  propagate(d, on, /*parallel=*/true, [&](size_t l, const std::vector<float>&, const std::vector<float>& y, int64_t begin, int64_t n) {
    if (l + 1 != layers_.size()) return;
    for (int64_t c = 0; c < classes; ++c)
      for (int64_t s = 0; s < n; ++s) out[static_cast<size_t>((begin + s) * classes + c)] = y[static_cast<size_t>(c * n + s)];
  });
  return out;
}

namespace {
std::vector<int32_t> argmax_rows(const std::vector<float>& scores, int64_t classes) {
  std::vector<int32_t> out(scores.size() / static_cast<size_t>(classes));
  for (size_t s = 0; s < out.size(); ++s) {
    const float* row = scores.data() + s * static_cast<size_t>(classes);
    out[s] = static_cast<int32_t>(std::max_element(row, row + classes) - row);
  }
  return out;
}
}  // namespace

std::vector<int32_t> Topology::predict(const data::Dataset& d, float on) const {
  return argmax_rows(scores(d, on), layers_.back().out);
}

Topology::CircuitPredictions Topology::predict_circuit(const data::Dataset& d) const {
  const int64_t classes = layers_.back().out;
  if (classes > 64) throw std::invalid_argument("Topology::predict_circuit: at most 64 classes");
  CircuitPredictions out;
  out.predicted.resize(static_cast<size_t>(d.size()));
  out.tied.resize(static_cast<size_t>(d.size()));
  std::vector<uint8_t> bits;
  std::vector<double> scores(static_cast<size_t>(classes));
  for (int64_t s = 0; s < d.size(); ++s) {
    // Input bits, then each layer's bits; the last layer maps integer popcounts to scores.
    const float* x = d.features.data() + s * d.sample_size();
    bits.assign(static_cast<size_t>(d.sample_size()), 0);
    for (int64_t i = 0; i < d.sample_size(); ++i) bits[static_cast<size_t>(i)] = x[i] >= 0.5f;
    for (size_t l = 0; l < layers_.size(); ++l) {
      const TopologyLayer& L = layers_[l];
      const bool last = l + 1 == layers_.size();
      std::vector<uint8_t> next(static_cast<size_t>(L.out));
      for (int64_t j = 0; j < L.out; ++j) {
        int popcount = 0;
        for (int64_t k = L.start[static_cast<size_t>(j)]; k < L.start[static_cast<size_t>(j) + 1]; ++k)
          popcount += bits[static_cast<size_t>(L.inputs[static_cast<size_t>(k)])];
        const float a = L.alpha[static_cast<size_t>(j)], b = L.beta[static_cast<size_t>(j)];
        if (last) {
          const double residue = 2.0 / (std::exp(2.0 * on_ * popcount) + 1.0);  // 1 − tanh(on·popcount)
          scores[static_cast<size_t>(j)] = (static_cast<double>(a) + b) - static_cast<double>(a) * residue;
        }
        else next[static_cast<size_t>(j)] = a < 0.0f ? popcount == 0 : popcount > 0;  // NOR or OR
      }
      bits = std::move(next);
    }
    const auto best = std::max_element(scores.begin(), scores.end());
    out.predicted[static_cast<size_t>(s)] = static_cast<int32_t>(best - scores.begin());
    for (int64_t c = 0; c < classes; ++c)
      if (scores[static_cast<size_t>(c)] == *best) out.tied[static_cast<size_t>(s)] |= uint64_t{1} << c;
  }
  return out;
}

std::vector<std::vector<bool>> Topology::units_on_path_to_output() const {
  std::vector<std::vector<bool>> on_path(layers_.size());
  std::vector<bool> feeds;  // inputs of the layer above that feed one of its units on a path
  for (size_t l = layers_.size(); l-- > 0;) {
    const TopologyLayer& L = layers_[l];
    std::vector<bool>& path = on_path[l];
    path.resize(static_cast<size_t>(L.out));
    for (int64_t j = 0; j < L.out; ++j) {
      const bool has_input = L.start[static_cast<size_t>(j) + 1] > L.start[static_cast<size_t>(j)];
      path[static_cast<size_t>(j)] = has_input && (l + 1 == layers_.size() || feeds[static_cast<size_t>(j)]);
    }
    feeds.assign(static_cast<size_t>(L.in), false);
    for (int64_t j = 0; j < L.out; ++j)
      if (path[static_cast<size_t>(j)])
        for (int64_t k = L.start[static_cast<size_t>(j)]; k < L.start[static_cast<size_t>(j) + 1]; ++k)
          feeds[static_cast<size_t>(L.inputs[static_cast<size_t>(k)])] = true;
  }
  return on_path;
}

std::vector<NorLayerReport> Topology::nor_agreement(const data::Dataset& d) const {
  struct UnitTally {
    int64_t agree = 0, nor_but_low = 0, not_nor_but_high = 0;
    bool seen_high = false, seen_low = false;
  };
  std::vector<std::vector<UnitTally>> tally(layers_.size());
  for (size_t l = 0; l < layers_.size(); ++l) tally[l].resize(static_cast<size_t>(layers_[l].out));
  propagate(d, on_, /*parallel=*/false, [&](size_t l, const std::vector<float>& x, const std::vector<float>& y, int64_t, int64_t n) {
    const TopologyLayer& L = layers_[l];
    for (int64_t j = 0; j < L.out; ++j) {
      UnitTally& t = tally[l][static_cast<size_t>(j)];
      for (int64_t s = 0; s < n; ++s) {
        bool any = false;
        for (int64_t k = L.start[static_cast<size_t>(j)]; k < L.start[static_cast<size_t>(j) + 1] && !any; ++k)
          any = x[static_cast<size_t>(L.inputs[static_cast<size_t>(k)] * n + s)] >= 0.5f;
        const bool high = y[static_cast<size_t>(j * n + s)] > 0.5f;
        (high ? t.seen_high : t.seen_low) = true;
        if (high == !any) ++t.agree;
        else if (high) ++t.not_nor_but_high;
        else ++t.nor_but_low;
      }
    }
  });
  const auto on_path = units_on_path_to_output();
  const double samples = static_cast<double>(d.size());
  std::vector<NorLayerReport> out;
  for (size_t l = 0; l < layers_.size(); ++l) {
    const TopologyLayer& L = layers_[l];
    NorLayerReport r;
    int64_t agree = 0;
    for (int64_t j = 0; j < L.out; ++j) {
      const UnitTally& t = tally[l][static_cast<size_t>(j)];
      r.inverting += L.alpha[static_cast<size_t>(j)] < 0.0f;
      if (L.start[static_cast<size_t>(j) + 1] == L.start[static_cast<size_t>(j)]) continue;
      ++r.units;
      r.mean_over_all += static_cast<double>(t.agree) / samples;
      if (!t.seen_high || !t.seen_low || !on_path[l][static_cast<size_t>(j)]) continue;
      ++r.counted;
      agree += t.agree;
      r.nor_but_low += t.nor_but_low;
      r.not_nor_but_high += t.not_nor_but_high;
      r.share_at_99 += static_cast<double>(t.agree) >= 0.99 * samples;
    }
    if (r.units) r.mean_over_all /= static_cast<double>(r.units);
    r.agreement = r.counted ? static_cast<double>(agree) / (static_cast<double>(r.counted) * samples) : std::nan("");
    if (r.counted) r.share_at_99 /= static_cast<double>(r.counted);
    out.push_back(r);
  }
  return out;
}

NorCriterion nor_criterion(const std::vector<NorLayerReport>& reports) {
  NorCriterion c;
  c.min_agreement = c.min_share_at_99 = 1.0;
  c.met = true;
  // Hidden layers past the first: every weight layer but the first and the output layer.
  for (size_t l = 1; l + 1 < reports.size(); ++l) {
    ++c.layers;
    const NorLayerReport& r = reports[l];
    if (r.counted == 0) {
      c.met = false;
      c.min_agreement = c.min_share_at_99 = 0.0;
      continue;
    }
    c.min_agreement = std::min(c.min_agreement, r.agreement);
    c.min_share_at_99 = std::min(c.min_share_at_99, r.share_at_99);
  }
  c.met = c.met && c.layers > 0 && c.min_agreement >= 0.99 && c.min_share_at_99 >= 0.9;
  return c;
}

double accuracy(const std::vector<int32_t>& predictions, const data::Dataset& d) {
  int64_t ok = 0;
  for (size_t i = 0; i < predictions.size(); ++i) ok += predictions[i] == d.labels[i];
  return d.size() ? static_cast<double>(ok) / static_cast<double>(d.size()) : 0.0;
}

double agreement_up_to_ties(const Topology::CircuitPredictions& circuit, const std::vector<int32_t>& predictions) {
  int64_t inside = 0;
  for (size_t i = 0; i < predictions.size(); ++i) inside += (circuit.tied[i] >> predictions[i]) & 1u;
  return predictions.empty() ? 0.0 : static_cast<double>(inside) / static_cast<double>(predictions.size());
}

double tie_share(const Topology::CircuitPredictions& circuit) {
  int64_t ties = 0;
  for (uint64_t m : circuit.tied) ties += std::popcount(m) > 1;
  return circuit.tied.empty() ? 0.0 : static_cast<double>(ties) / static_cast<double>(circuit.tied.size());
}

double agreement_where_decisive(const Topology::CircuitPredictions& circuit, const std::vector<int32_t>& predictions) {
  int64_t decisive = 0, same = 0;
  for (size_t i = 0; i < predictions.size(); ++i)
    if (std::popcount(circuit.tied[i]) == 1) {
      ++decisive;
      same += circuit.predicted[i] == predictions[i];
    }
  return decisive ? static_cast<double>(same) / static_cast<double>(decisive) : 0.0;
}

double circuit_accuracy_random_ties(const Topology::CircuitPredictions& circuit, const data::Dataset& d) {
  double expected = 0.0;
  for (size_t i = 0; i < circuit.tied.size(); ++i)
    if ((circuit.tied[i] >> d.labels[i]) & 1u) expected += 1.0 / std::popcount(circuit.tied[i]);
  return circuit.tied.empty() ? 0.0 : expected / static_cast<double>(circuit.tied.size());
}

double circuit_accuracy_ceiling(const Topology::CircuitPredictions& circuit, const data::Dataset& d) {
  int64_t inside = 0;
  for (size_t i = 0; i < circuit.tied.size(); ++i) inside += (circuit.tied[i] >> d.labels[i]) & 1u;
  return circuit.tied.empty() ? 0.0 : static_cast<double>(inside) / static_cast<double>(circuit.tied.size());
}

WeightBand flat_band(const std::vector<std::pair<double, double>>& sweep, double centre, double accuracy_at_centre,
                     double tolerance, double step) {
  WeightBand band{centre, centre};
  const double floor = accuracy_at_centre - tolerance;
  for (auto [on, acc] : sweep)
    if (on >= centre && on - band.hi <= step * 1.5) {
      if (acc < floor) break;
      band.hi = on;
    }
  for (auto it = sweep.rbegin(); it != sweep.rend(); ++it)
    if (it->first <= centre && band.lo - it->first <= step * 1.5) {
      if (it->second < floor) break;
      band.lo = it->first;
    }
  return band;
}

double agreement(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  int64_t same = 0;
  for (size_t i = 0; i < a.size(); ++i) same += a[i] == b[i];
  return a.empty() ? 0.0 : static_cast<double>(same) / static_cast<double>(a.size());
}

}  // namespace xp::networks
