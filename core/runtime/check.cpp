#include "core/runtime/check.h"

namespace xp {

void check_failed(const char* file, int line, const char* cond, const std::string& hint) {
  throw CheckError(fmt::format("{}:{}: check failed: {}: {}", file, line, cond, hint));
}

}  // namespace xp
