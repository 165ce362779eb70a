#include "core/dist/rank_regions.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace xp::dist {

namespace {

constexpr size_t kLine = 64;

// This machine and this boot: ranks whose identities match can share memory.
std::array<char, 128> machine_identity() {
  std::array<char, 128> id{};
  gethostname(id.data(), 63);
  std::ifstream boot("/proc/sys/kernel/random/boot_id");
  boot.read(id.data() + 64, 63);
  return id;
}

}  // namespace

RankRegions::RankRegions(ProcessGroup& group, size_t bytes, Transport transport)
    : group_(group), bytes_(bytes), stride_((bytes + kLine - 1) / kLine * kLine) {
  if (transport == Transport::kAuto && group_.size() > 1 && map_shared()) return;
  mirror_.assign(stride_ * static_cast<size_t>(group_.size()), std::byte{0});
}

RankRegions::~RankRegions() {
  if (mapped_) munmap(mapped_, mapped_size_);
}

std::byte* RankRegions::region(int rank) {
  std::byte* base = mapped_ ? mapped_ : mirror_.data();
  return base + static_cast<size_t>(rank) * stride_;
}

bool RankRegions::map_shared() {
  const auto id = machine_identity();
  const std::vector<char> ids = group_.all_gather(std::span<const char>(id));
  for (int r = 1; r < group_.size(); ++r)
    if (!std::equal(id.begin(), id.end(), ids.begin() + r * static_cast<std::ptrdiff_t>(id.size()))) return false;

  // Rank 0 creates the segment with all its pages reserved (tmpfs refuses here, not with a
  // SIGBUS at first touch, when it is too small) and sends its name; none: the name is empty.
  const size_t total = stride_ * static_cast<size_t>(group_.size());
  const bool creator = group_.rank() == 0;
  std::string name;
  int fd = -1;
  if (creator) {
    static std::atomic<uint64_t> made{0};
    name = fmt::format("/exp-regions-{}-{}-{}", getpid(), made++,
                       std::chrono::steady_clock::now().time_since_epoch().count());
    fd = shm_open(name.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd >= 0 && (ftruncate(fd, static_cast<off_t>(total)) != 0 || posix_fallocate(fd, 0, static_cast<off_t>(total)) != 0)) {
      close(fd);
      shm_unlink(name.c_str());
      fd = -1;
    }
    if (fd < 0) name.clear();
  }
  // Rank 0 removes the name on leaving, when every rank has mapped it or failed to (or a peer
  // failed): the memory lives until the last rank unmaps it, and nothing is left in /dev/shm.
  struct Unlink {
    std::string name;
    ~Unlink() {
      if (!name.empty()) shm_unlink(name.c_str());
    }
  } unlink_on_leaving{name};
  std::vector<std::byte> sent(reinterpret_cast<const std::byte*>(name.data()),
                              reinterpret_cast<const std::byte*>(name.data()) + name.size());
  group_.broadcast_bytes(sent, 0);
  if (sent.empty()) return false;
  if (!creator) fd = shm_open(std::string(reinterpret_cast<const char*>(sent.data()), sent.size()).c_str(), O_RDWR, 0);
  void* p = fd >= 0 ? mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
  if (fd >= 0) close(fd);
  const std::byte ok{p != MAP_FAILED ? uint8_t{1} : uint8_t{0}};
  const std::vector<std::byte> oks = group_.all_gather(std::span<const std::byte>(&ok, 1));
  if (std::any_of(oks.begin(), oks.end(), [](std::byte b) { return b == std::byte{0}; })) {
    if (p != MAP_FAILED) munmap(p, total);
    return false;
  }
  mapped_ = static_cast<std::byte*>(p);
  mapped_size_ = total;
  return true;
}

void RankRegions::check_range(const char* op, size_t offset, size_t length) const {
  if (offset > bytes_ || length > bytes_ - offset)
    throw std::out_of_range(fmt::format("RankRegions::{}: bytes {}..{} of a {}-byte region", op, offset, offset + length, bytes_));
}

std::byte* RankRegions::writable(size_t offset, size_t length) {
  check_range("writable", offset, length);
  if (mapped_ && offset < last_offset_ + last_length_ && last_offset_ < offset + length) publish(0, 0);
  return region(group_.rank()) + offset;
}

void RankRegions::publish(size_t offset, size_t length) {
  check_range("publish", offset, length);
  if (group_.size() == 1) return;
  if (mapped_) {
    // The barrier orders every rank's writes before every other rank's reads after it.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    group_.barrier();
    std::atomic_thread_fence(std::memory_order_seq_cst);
    last_offset_ = offset;
    last_length_ = length;
    return;
  }
  gathered_.resize(length * static_cast<size_t>(group_.size()));
  group_.all_gather_bytes(std::span<const std::byte>(region(group_.rank()) + offset, length), gathered_);
  for (int r = 0; r < group_.size(); ++r)
    if (r != group_.rank()) std::memcpy(region(r) + offset, gathered_.data() + static_cast<size_t>(r) * length, length);
}

}  // namespace xp::dist
