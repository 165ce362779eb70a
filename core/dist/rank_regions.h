// One memory region per rank of a group that every rank can read: each rank writes its own, and
// publish(offset, length) — a collective — makes that byte range of every rank's region visible
// to all. The bytes move the cheapest way the ranks allow:
// - all on one machine (the same host and boot): one POSIX shared-memory segment mapped by every
//   rank, and publish() is the group's barrier — nothing is copied, a reader reads the writer's
//   bytes where they were written;
// - otherwise (or when /dev/shm cannot hold the segment, or the caller asks for messages): a
//   local mirror of every region, and publish() all-gathers the range.
// The barrier and the all-gather are the group's, so a rank that died or hangs ends publish()
// with the group's CollectiveError naming it, never a hang.
//
// A rank writes its own region through writable(), and reads the others' published bytes until
// its next publish(). The others read this rank's bytes of a publish until they reach the next
// one, so writable() waits at a barrier first when asked for bytes the latest publish covered.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "core/dist/process_group.h"

namespace xp::dist {

class RankRegions {
 public:
  enum class Transport { kAuto, kMessages };
  // A collective: every rank of `group` calls it with the same `bytes`. The regions start zeroed.
  RankRegions(ProcessGroup& group, size_t bytes, Transport transport = Transport::kAuto);
  ~RankRegions();
  RankRegions(const RankRegions&) = delete;
  RankRegions& operator=(const RankRegions&) = delete;

  // This rank's bytes [offset, offset + length) to write (over shared memory, once no rank can
  // still be reading them).
  std::byte* writable(size_t offset, size_t length);
  // Rank `rank`'s region: what it published, as of this rank's latest publish().
  const std::byte* of(int rank) const { return const_cast<RankRegions*>(this)->region(rank); }
  size_t bytes() const { return bytes_; }
  // Whether the regions are one shared-memory segment (else messages carry the bytes).
  bool shared() const { return mapped_ != nullptr; }
  // After it returns, [offset, offset + length) of every rank's region holds what that rank wrote
  // there before calling it. A collective, in the same order on every rank.
  void publish(size_t offset, size_t length);

 private:
  std::byte* region(int rank);
  void check_range(const char* op, size_t offset, size_t length) const;
  // Maps one segment for all ranks, or returns false on every rank (another machine, or no room).
  bool map_shared();

  ProcessGroup& group_;
  size_t bytes_;   // each region, as asked
  size_t stride_;  // each region, rounded to a cache line (regions start 64-byte aligned)
  std::byte* mapped_ = nullptr;
  size_t mapped_size_ = 0;
  std::vector<std::byte> mirror_;    // messages: every rank's region, in rank order
  std::vector<std::byte> gathered_;  // messages: publish's scratch
  size_t last_offset_ = 0, last_length_ = 0;  // the latest publish's range (shared memory)
};

}  // namespace xp::dist
