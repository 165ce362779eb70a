#include "core/jobs/checkpoint_store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "core/jobs/bytes.h"
#include "core/runtime/logging.h"

namespace xp::jobs {
namespace fs = std::filesystem;
namespace {

constexpr char kMagic[8] = {'E', 'X', 'P', 'C', 'K', 'P', 'T', '\n'};
constexpr uint32_t kFormatVersion = 1;
constexpr size_t kHeaderSize = 8 + 4 + 8 + 8;  // magic, version, step, payload size

void write_all(int fd, const void* data, size_t n, const fs::path& path) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw runtime::IoError(fmt::format("{}: write failed: {}", path.string(), std::strerror(errno)));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

std::optional<uint64_t> step_of(const fs::path& p) {
  std::string name = p.filename().string();
  if (!name.starts_with("ckpt-") || p.extension() != ".ckpt") return std::nullopt;
  try {
    return std::stoull(name.substr(5, name.size() - 10));
  } catch (...) {
    return std::nullopt;
  }
}

}  // namespace

CheckpointStore::CheckpointStore(fs::path dir, int keep) : dir_(std::move(dir)), keep_(std::max(1, keep)) {}

void CheckpointStore::save(uint64_t step, std::span<const std::byte> payload) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw runtime::IoError(fmt::format("{}: cannot create checkpoint directory: {}", dir_.string(), ec.message()));

  ByteWriter header;
  header.put(kMagic);
  header.put(kFormatVersion);
  header.put(step);
  header.put<uint64_t>(payload.size());
  XXH3_state_t* st = XXH3_createState();
  XXH3_64bits_reset(st);
  XXH3_64bits_update(st, header.bytes().data(), header.bytes().size());
  XXH3_64bits_update(st, payload.data(), payload.size());
  uint64_t checksum = XXH3_64bits_digest(st);
  XXH3_freeState(st);

  fs::path final_path = dir_ / fmt::format("ckpt-{:012d}.ckpt", step);
  fs::path tmp = dir_ / fmt::format("ckpt-{:012d}.tmp", step);
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw runtime::IoError(fmt::format("{}: cannot create: {}", tmp.string(), std::strerror(errno)));
  try {
    write_all(fd, header.bytes().data(), header.bytes().size(), tmp);
    write_all(fd, payload.data(), payload.size(), tmp);
    write_all(fd, &checksum, sizeof(checksum), tmp);
    if (::fsync(fd) != 0) throw runtime::IoError(fmt::format("{}: fsync failed: {}", tmp.string(), std::strerror(errno)));
  } catch (...) {
    ::close(fd);
    fs::remove(tmp, ec);
    throw;
  }
  ::close(fd);
  fs::rename(tmp, final_path, ec);
  if (ec) throw runtime::IoError(fmt::format("{}: rename failed: {}", final_path.string(), ec.message()));
  if (int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    ::fsync(dfd);  // make the rename itself durable
    ::close(dfd);
  }
  auto all = list();
  for (size_t i = 0; i + static_cast<size_t>(keep_) < all.size(); ++i) fs::remove(all[i], ec);
}

std::vector<fs::path> CheckpointStore::list() const {
  std::vector<std::pair<uint64_t, fs::path>> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir_, ec))
    if (auto s = step_of(e.path())) found.emplace_back(*s, e.path());
  std::sort(found.begin(), found.end());
  std::vector<fs::path> out;
  for (auto& [s, p] : found) out.push_back(p);
  return out;
}

CheckpointStore::Loaded CheckpointStore::read(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw runtime::IoError(fmt::format("{}: cannot open", path.string()));
  std::vector<char> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (raw.size() < kHeaderSize + 8) throw CheckpointError(fmt::format("{}: truncated ({} bytes)", path.string(), raw.size()));
  if (std::memcmp(raw.data(), kMagic, 8) != 0) throw CheckpointError(fmt::format("{}: not an exp checkpoint", path.string()));
  ByteReader r(reinterpret_cast<const std::byte*>(raw.data()) + 8, raw.size() - 8);
  uint32_t version = r.get<uint32_t>();
  if (version != kFormatVersion)
    throw CheckpointError(fmt::format("{}: format version {} (this build reads {})", path.string(), version, kFormatVersion));
  Loaded out;
  out.step = r.get<uint64_t>();
  uint64_t size = r.get<uint64_t>();
  if (raw.size() != kHeaderSize + size + 8)
    throw CheckpointError(fmt::format("{}: size mismatch: header says {} payload bytes, file has {}", path.string(), size,
                               raw.size() - kHeaderSize - 8));
  uint64_t stored;
  std::memcpy(&stored, raw.data() + kHeaderSize + size, 8);
  uint64_t actual = XXH3_64bits(raw.data(), kHeaderSize + size);
  if (stored != actual) throw CheckpointError(fmt::format("{}: checksum mismatch", path.string()));
  const std::byte* p = reinterpret_cast<const std::byte*>(raw.data()) + kHeaderSize;
  out.payload.assign(p, p + size);
  out.path = path;
  return out;
}

std::optional<CheckpointStore::Loaded> CheckpointStore::load_latest() const {
  auto all = list();
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    try {
      return read(*it);
    } catch (const std::runtime_error& e) {  // CheckpointError or IoError: the one before may do
      runtime::logger()->warn("skipping checkpoint: {}", e.what());
    }
  }
  return std::nullopt;
}

}  // namespace xp::jobs
