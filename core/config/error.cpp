#include "core/config/error.h"

#include <fmt/format.h>

#include <algorithm>

namespace xp::config {
namespace {

std::string format_error(const std::string& message, const SourceLoc& loc, const std::string& key,
                         const std::string& hint) {
  std::string out = loc.str().empty() ? message : fmt::format("{}: {}", loc.str(), message);
  if (!key.empty()) out += fmt::format("\n  key: {}", key);
  if (!hint.empty()) out += fmt::format("\n  hint: {}", hint);
  return out;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

ConfigError::ConfigError(std::string message, SourceLoc loc, std::string key, std::string hint)
    : std::runtime_error(format_error(message, loc, key, hint)),
      message_(std::move(message)),
      loc_(std::move(loc)),
      key_(std::move(key)),
      hint_(std::move(hint)) {}

std::string closest_match(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = SIZE_MAX;
  for (const auto& c : candidates) {
    size_t d = edit_distance(word, c);
    if (d < best_d) best_d = d, best = c;
  }
  size_t allowed = std::max<size_t>(2, word.size() / 3);
  return best_d <= allowed ? best : std::string();
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  std::string m = closest_match(word, candidates);
  return m.empty() ? std::string() : fmt::format("did you mean '{}'?", m);
}

}  // namespace xp::config
