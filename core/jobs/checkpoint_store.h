// CheckpointStore: atomic, checksummed checkpoints in one directory (docs/reliability.md).
// save() writes ckpt-<step>.tmp, fsyncs it, renames it to ckpt-<step>.ckpt and fsyncs the
// directory: the rename is the "done" marker, so a checkpoint either exists whole or not at all.
// Each file carries a header (magic, format version, step, size) and an XXH3-64 checksum of
// header and payload; load_latest() returns the newest file that validates, skipping torn or
// corrupted ones. Keeps the last `keep` checkpoints. Not thread-safe: one writer per directory.
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <vector>

#include "core/jobs/bytes.h"
#include "core/runtime/files.h"

namespace xp::jobs {

class CheckpointStore {
 public:
  explicit CheckpointStore(std::filesystem::path dir, int keep = 2);

  // Throws runtime::IoError when the checkpoint cannot be written (no file is left behind).
  void save(uint64_t step, std::span<const std::byte> payload);

  struct Loaded {
    uint64_t step = 0;
    std::vector<std::byte> payload;
    std::filesystem::path path;
  };
  std::optional<Loaded> load_latest() const;
  // Validates and reads one file; throws CheckpointError saying what is wrong with it (or
  // runtime::IoError when it cannot be opened).
  static Loaded read(const std::filesystem::path& path);

  std::vector<std::filesystem::path> list() const;  // valid-looking names, oldest first
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  int keep_;
};

}  // namespace xp::jobs
