// What binary is running: recorded as provenance in every results file.
#pragma once
#include <string>

namespace xp::runtime {

struct BuildInfo {
  std::string git_sha;   // HEAD at build time, or "unknown" outside a git checkout
  bool git_dirty;        // tracked files differed from HEAD at build time
  std::string options;   // build type, CUDA on/off, sanitizers, compiler
};

const BuildInfo& build_info();  // defined in the generated build_info.cpp

}  // namespace xp::runtime
