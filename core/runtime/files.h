// Whole-file writes that never leave a half-written file: write a temp file beside the target,
// rename it over the target. Readers, and a run resumed after the process was killed, see the
// old content or the new, nothing between. `Durability::survive_power_loss` also fsyncs before
// the rename (checkpoint data); without it a write costs no journal flush — on ext4 the first
// fsync after a large results file took 50-200 ms, most of a small simulation's run time.
#pragma once
//
// Failures are exceptions, as everywhere in the project: IoError names the path and the reason.
#include <filesystem>
#include <stdexcept>
#include <string>

namespace xp::runtime {

// A file or an outside process could not be read, written or run.
class IoError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class Durability { survive_kill, survive_power_loss };
void write_file_atomic(const std::filesystem::path& path, const std::string& content,
                       Durability durability = Durability::survive_power_loss);
std::string read_file(const std::filesystem::path& path);

}  // namespace xp::runtime
