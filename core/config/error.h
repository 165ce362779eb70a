// ConfigError: a config problem a person can act on — where (file:line:col), which key (full
// dotted path), what is wrong, and a hint. The CLI prints it and exits with status 2.
#pragma once
#include <stdexcept>
#include <string>
#include <vector>

#include "core/config/node.h"

namespace xp::config {

class ConfigError : public std::runtime_error {
 public:
  ConfigError(std::string message, SourceLoc loc = {}, std::string key = {}, std::string hint = {});
  const std::string& message() const { return message_; }
  const SourceLoc& loc() const { return loc_; }
  const std::string& key() const { return key_; }
  const std::string& hint() const { return hint_; }

 private:
  std::string message_;
  SourceLoc loc_;
  std::string key_;
  std::string hint_;
};

// The closest candidate by edit distance, or "" if none is close enough to be a plausible typo.
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);
// "did you mean 'x'?" or "" when closest_match finds nothing.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace xp::config
