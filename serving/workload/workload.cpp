#include "serving/workload/workload.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <tuple>

#include "core/config/error.h"
#include "core/data/csv.h"

namespace xp::serving {
namespace {

enum Stream : uint64_t { kLengths = 101, kArrivals = 102, kShuffle = 103 };

// Marsaglia & Tsang (2000): a Gamma(k, 1) draw from normals and uniforms of our own stream, so
// results do not depend on the standard library's distribution code.
double gamma_draw(runtime::RngStream& rng, double k) {
  if (k < 1) return gamma_draw(rng, k + 1) * std::pow(rng.uniform() + 1e-300, 1.0 / k);
  double d = k - 1.0 / 3.0, c = 1.0 / std::sqrt(9 * d);
  while (true) {
    double x = rng.normal(), v = 1 + c * x;
    if (v <= 0) continue;
    v = v * v * v;
    double u = rng.uniform();
    if (u < 1 - 0.0331 * x * x * x * x || std::log(u + 1e-300) < 0.5 * x * x + d * (1 - v + std::log(v))) return d * v;
  }
}

// A trace file's requests, checked. Traces are read-only inputs, so each is read once per process
// (keyed by path, size and modification time): a capacity or config search makes a generator per
// probe, and a simulation's set-up checks the trace before its run reads it again.
struct Trace {
  std::vector<std::pair<int64_t, int64_t>> lengths;
  std::vector<double> arrivals;  // empty unless asked for
};

std::shared_ptr<const Trace> read_trace(const std::string& path, bool with_arrivals) {
  static std::mutex mu;
  static std::map<std::tuple<std::string, bool, uintmax_t, std::filesystem::file_time_type>, std::shared_ptr<const Trace>> cache;
  std::error_code ec;
  const auto key = std::make_tuple(path, with_arrivals, std::filesystem::file_size(path, ec),
                                   std::filesystem::last_write_time(path, ec));
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = cache.find(key); it != cache.end()) return it->second;
  data::CsvTable t = data::CsvTable::load(path);
  auto trace = std::make_shared<Trace>();
  size_t pc = t.column("num_prefill_tokens"), dc = t.column("num_decode_tokens");
  std::optional<size_t> ac;
  if (with_arrivals) ac = t.column("arrived_at");
  for (size_t i = 0; i < t.num_rows(); ++i) {
    double p = t.number(i, pc), d = t.number(i, dc);
    if (p < 1 || d < 1 || p != std::floor(p) || d != std::floor(d))
      throw std::runtime_error(fmt::format("{}:{}: token counts must be positive integers, got {} and {}",
                                           t.path().string(), t.line_of(i), p, d));
    trace->lengths.emplace_back(static_cast<int64_t>(p), static_cast<int64_t>(d));
    if (ac) {
      double a = t.number(i, *ac);
      if (a < 0 || (!trace->arrivals.empty() && a < trace->arrivals.back()))
        throw std::runtime_error(fmt::format("{}:{}: arrived_at must be >= 0 and non-decreasing, got {}",
                                             t.path().string(), t.line_of(i), a));
      trace->arrivals.push_back(a);
    }
  }
  if (trace->lengths.empty()) throw std::runtime_error(fmt::format("{}: no requests in the trace", path));
  if (!ec) cache.emplace(key, trace);
  return trace;
}

}  // namespace

// Vidur's length generators: a request over max_tokens gives up the excess in proportion to its
// prompt and output (each share rounded up), then each keeps at least one token. Clipping the
// prompt first instead left long prompts with a single output token (226 of 10,000 in the Vidur
// workload), whose normalized latency is their whole TTFT.
std::pair<int64_t, int64_t> clip_lengths(int64_t prompt, int64_t decode, int64_t max_tokens) {
  const int64_t total = prompt + decode, excess = std::max<int64_t>(0, total - max_tokens);
  if (excess > 0) {
    const double e = static_cast<double>(excess), t = static_cast<double>(total);
    prompt -= static_cast<int64_t>(std::ceil(e * (static_cast<double>(prompt) / t)));
    decode -= static_cast<int64_t>(std::ceil(e * (static_cast<double>(decode) / t)));
  }
  return {std::max<int64_t>(prompt, 1), std::max<int64_t>(decode, 1)};
}

WorkloadConfig WorkloadConfig::from(const config::ConfigReader& r, const std::filesystem::path& data_root) {
  WorkloadConfig c;
  r.get("num_requests", c.num_requests, config::Range::between(1, kMaxRequests));
  r.get_enum("lengths", c.lengths, {"trace", "fixed", "uniform", "zipf"});
  r.get("trace_file", c.trace_file);
  r.get("shuffle_trace", c.shuffle_trace);
  r.get("prompt_tokens", c.prompt_tokens, config::Range::at_least(1));
  r.get("decode_tokens", c.decode_tokens, config::Range::at_least(1));
  r.get("min_tokens", c.min_tokens, config::Range::at_least(2));
  r.get("max_tokens", c.max_tokens, config::Range::at_least(2));
  r.get("prefill_to_decode", c.prefill_to_decode, config::Range::positive());
  r.get("zipf_theta", c.zipf_theta, config::Range::non_negative());
  r.get_enum("arrivals", c.arrivals, {"poisson", "gamma", "static", "trace"});
  r.get("qps", c.qps, config::Range::positive());
  r.get("cv", c.cv, config::Range::positive());
  r.get("time_scale", c.time_scale, config::Range::positive());
  r.finish();
  auto fail = [&](const char* key, const std::string& why, const std::string& hint) {
    const config::ConfigNode* n = r.raw(key);
    return config::ConfigError(why, n ? n->loc() : config::SourceLoc{}, config::join_path(r.path(), key), hint);
  };
  if (c.num_requests <= 0) throw fail("num_requests", "must be positive", "set workload.num_requests=<n>");
  if (c.max_tokens < 2) throw fail("max_tokens", "must be at least 2", "set workload.max_tokens=4096");
  if ((c.arrivals == "poisson" || c.arrivals == "gamma") && !(c.qps > 0))
    throw fail("qps", fmt::format("must be positive, got {}", c.qps), "set workload.qps=<requests per second>");
  if (c.arrivals == "gamma" && !(c.cv > 0)) throw fail("cv", "must be positive", "set workload.cv=0.5");
  if (c.lengths == "trace" || c.arrivals == "trace") {
    if (c.trace_file.empty()) throw fail("trace_file", "a trace is needed but none is named", "set workload.trace_file=PATH");
    std::filesystem::path p = c.trace_file;
    if (p.is_relative()) p = data_root / p;
    if (!std::filesystem::exists(p))
      throw fail("trace_file", fmt::format("trace file {} does not exist", p.string()),
                 "trace paths are relative to the data folder, e.g. vidur/processed_traces/splitwise_conv.csv");
    c.trace_file = p.string();
  }
  return c;
}

RequestGenerator::RequestGenerator(const WorkloadConfig& cfg, uint64_t seed)
    : cfg_(cfg), len_rng_(seed, kLengths), arrival_rng_(seed, kArrivals) {
  if (cfg_.lengths == "trace" || cfg_.arrivals == "trace") {
    const std::shared_ptr<const Trace> trace = read_trace(cfg_.trace_file, cfg_.arrivals == "trace");
    trace_lengths_ = trace->lengths;
    for (double a : trace->arrivals) trace_arrivals_.push_back(a * cfg_.time_scale);
    if (cfg_.shuffle_trace && cfg_.arrivals != "trace") {
      runtime::RngStream shuffle(seed, kShuffle);
      for (size_t i = trace_lengths_.size() - 1; i > 0; --i)
        std::swap(trace_lengths_[i], trace_lengths_[shuffle.below(i + 1)]);
    }
  }
  if (cfg_.lengths == "zipf") {
    int64_t n = std::max<int64_t>(1, cfg_.max_tokens - cfg_.min_tokens + 1);
    zipf_cdf_.resize(static_cast<size_t>(n));
    double s = 0;
    for (int64_t k = 0; k < n; ++k) zipf_cdf_[static_cast<size_t>(k)] = s += 1.0 / std::pow(static_cast<double>(k + 1), cfg_.zipf_theta);
    for (double& v : zipf_cdf_) v /= s;
  }
}

std::pair<int64_t, int64_t> RequestGenerator::lengths(uint64_t i) {
  auto split = [&](int64_t total) {
    int64_t d = std::max<int64_t>(1, static_cast<int64_t>(std::llround(static_cast<double>(total) / (1 + cfg_.prefill_to_decode))));
    return clip_lengths(total - d, d, cfg_.max_tokens);
  };
  if (cfg_.lengths == "trace") {
    auto [p, d] = trace_lengths_[i % trace_lengths_.size()];
    return clip_lengths(p, d, cfg_.max_tokens);
  }
  if (cfg_.lengths == "fixed") return clip_lengths(cfg_.prompt_tokens, cfg_.decode_tokens, cfg_.max_tokens);
  if (cfg_.lengths == "uniform")
    return split(cfg_.min_tokens + static_cast<int64_t>(len_rng_.below(static_cast<uint64_t>(cfg_.max_tokens - cfg_.min_tokens + 1))));
  double u = len_rng_.uniform();
  auto k = static_cast<int64_t>(std::lower_bound(zipf_cdf_.begin(), zipf_cdf_.end(), u) - zipf_cdf_.begin());
  return split(cfg_.min_tokens + k);
}

double RequestGenerator::next_gap() {
  double mean = 1.0 / cfg_.qps;
  if (cfg_.arrivals == "poisson") return std::min(-std::log(1.0 - arrival_rng_.uniform()) * mean, 3 * mean);
  double k = 1.0 / (cfg_.cv * cfg_.cv);  // gamma: shape from the CV, scale keeps the mean
  return gamma_draw(arrival_rng_, k) * mean / k;
}

std::optional<Request> RequestGenerator::next() {
  if (emitted_ >= static_cast<uint64_t>(cfg_.num_requests)) return std::nullopt;
  if (cfg_.arrivals == "trace" && emitted_ >= trace_arrivals_.size()) return std::nullopt;
  uint64_t i = emitted_++;
  Request r;
  r.id = i;
  auto [p, d] = lengths(i);
  r.prompt_tokens = p;
  r.decode_tokens = d;
  if (cfg_.arrivals == "static") r.arrival_s = 0;
  else if (cfg_.arrivals == "trace") r.arrival_s = trace_arrivals_[i];
  else r.arrival_s = clock_ += next_gap();  // as Vidur: the first request comes one gap after t = 0
  return r;
}

}  // namespace xp::serving
