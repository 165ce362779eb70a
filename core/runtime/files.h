// Whole-file writes that never leave a half-written file: write a temp file beside the target,
// fsync, rename over the target. Readers see the old content or the new, nothing between.
#pragma once
#include <filesystem>
#include <string>

#include "core/runtime/status.h"

namespace xp::runtime {

Status write_file_atomic(const std::filesystem::path& path, const std::string& content);
Result<std::string> read_file(const std::filesystem::path& path);

}  // namespace xp::runtime
