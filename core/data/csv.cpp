#include "core/data/csv.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <limits>
#include <stdexcept>

namespace xp::data {
namespace {

// The whole file, mapped read-only; the mapping lives as long as the last table that views it.
std::shared_ptr<const std::string_view> map_file(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    throw std::runtime_error(
        fmt::format("{}: cannot open: {} (check the path and the data folder)", path.string(), std::strerror(errno)));
  struct stat st{};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw std::runtime_error(fmt::format("{}: cannot stat: {}", path.string(), std::strerror(errno)));
  }
  const auto size = static_cast<size_t>(st.st_size);
  if (size >= std::numeric_limits<uint32_t>::max()) {
    ::close(fd);
    throw std::runtime_error(fmt::format("{}: {} bytes; CSV files of 4 GiB or more are not supported", path.string(), size));
  }
  if (size == 0) {
    ::close(fd);
    return std::make_shared<const std::string_view>();
  }
  void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  ::close(fd);
  if (p == MAP_FAILED) throw std::runtime_error(fmt::format("{}: cannot map: {}", path.string(), std::strerror(errno)));
  return std::shared_ptr<const std::string_view>(new std::string_view(static_cast<const char*>(p), size),
                                                 [size](const std::string_view* v) {
                                                   ::munmap(const_cast<char*>(v->data()), size);
                                                   delete v;
                                                 });
}

}  // namespace

template <class T>
T* PrefaultedAllocator<T>::allocate(size_t n) {
  void* p = ::mmap(nullptr, n * sizeof(T), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  return static_cast<T*>(p);
}

template <class T>
void PrefaultedAllocator<T>::deallocate(T* p, size_t n) {
  ::munmap(p, n * sizeof(T));
}

template struct PrefaultedAllocator<uint32_t>;

CsvTable CsvTable::load(const std::filesystem::path& path) {
  CsvTable t;
  t.path_ = path;
  t.text_ = map_file(path);
  const std::string_view all = *t.text_;
  if (const size_t at = all.find('"'); at != std::string_view::npos)
    throw std::runtime_error(fmt::format("{}:{}: quoted CSV cells are not supported", path.string(),
                                         1 + std::count(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(at), '\n')));
  // Sized once (growing the vector by doubling cost more than the parse).
  t.starts_.reserve(static_cast<size_t>(std::count(all.begin(), all.end(), ',') + 2 * std::count(all.begin(), all.end(), '\n') + 2));
  int lineno = 0;
  for (size_t start = 0; start < all.size();) {
    size_t end = std::min(all.find('\n', start), all.size());
    const size_t next = end + 1;
    if (end > start && all[end - 1] == '\r') --end;
    ++lineno;
    if (end == start) {
      start = next;
      continue;
    }
    if (t.header_.empty()) {
      for (size_t s = start;;) {
        const size_t comma = std::min(all.find(',', s), end);
        t.header_.emplace_back(all.substr(s, comma - s));
        if (comma == end) break;
        s = comma + 1;
      }
      start = next;
      continue;
    }
    const size_t first = t.starts_.size();
    for (size_t s = start;;) {
      t.starts_.push_back(static_cast<uint32_t>(s));
      const auto* comma = static_cast<const char*>(std::memchr(all.data() + s, ',', end - s));
      if (!comma) break;
      s = static_cast<size_t>(comma - all.data()) + 1;
    }
    t.starts_.push_back(static_cast<uint32_t>(end + 1));  // where a next cell would start
    const size_t n = t.starts_.size() - first - 1;
    if (n != t.header_.size())
      throw std::runtime_error(fmt::format("{}:{}: {} cells, but the header has {} columns", path.string(), lineno, n,
                                           t.header_.size()));
    t.lines_.push_back(lineno);
    start = next;
  }
  if (t.header_.empty()) throw std::runtime_error(fmt::format("{}: empty file (no header row)", path.string()));
  return t;
}

std::optional<size_t> CsvTable::index_of(const std::string& name) const {
  for (size_t i = 0; i < header_.size(); ++i)
    if (header_[i] == name) return i;
  return std::nullopt;
}

size_t CsvTable::column(const std::string& name) const {
  if (auto i = index_of(name)) return *i;
  throw std::runtime_error(fmt::format("{}: no column '{}' (columns: {})", path_.string(), name, fmt::join(header_, ", ")));
}

double CsvTable::number(size_t row, size_t col) const {
  const std::string_view s = cell(row, col);
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size())
    throw std::runtime_error(
        fmt::format("{}:{}: column '{}': '{}' is not a number", path_.string(), lines_[row], header_[col], s));
  return v;
}

}  // namespace xp::data
