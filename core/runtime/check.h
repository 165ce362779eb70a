// EXP_CHECK(cond, hint...): invariant checks that stay on in release builds. A failed check
// throws xp::CheckError carrying file:line and a fmt-formatted hint, so a driver can report it
// and exit instead of aborting mid-write.
#pragma once
#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace xp {

class CheckError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

[[noreturn]] void check_failed(const char* file, int line, const char* cond, const std::string& hint);

}  // namespace xp

#define EXP_CHECK(cond, ...)                                                            \
  do {                                                                                  \
    if (!(cond)) [[unlikely]]                                                           \
      ::xp::check_failed(__FILE__, __LINE__, #cond, ::fmt::format(__VA_ARGS__));       \
  } while (0)
