#include "core/data/csv.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <stdexcept>

namespace xp::data {
namespace {

// The cells of one line (a trailing '\r' dropped), appended to `out`; returns how many.
size_t split_line(std::string_view line, std::vector<std::string_view>& out) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  size_t n = 0;
  for (size_t start = 0;; ++n) {
    const size_t comma = line.find(',', start);
    out.push_back(line.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    if (comma == std::string_view::npos) return n + 1;
    start = comma + 1;
  }
}

}  // namespace

CsvTable CsvTable::load(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot open (check the path and the data folder)", path.string()));
  auto text = std::make_shared<std::string>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  CsvTable t;
  t.path_ = path;
  t.text_ = text;
  const std::string_view all(*text);
  if (all.find('"') != std::string_view::npos) {
    const size_t at = all.find('"');
    throw std::runtime_error(fmt::format("{}:{}: quoted CSV cells are not supported", path.string(),
                                         1 + std::count(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(at), '\n')));
  }
  // One pass to size the cells (growing the vector by doubling cost more than the parse).
  t.cells_.reserve(static_cast<size_t>(std::count(all.begin(), all.end(), ',') + std::count(all.begin(), all.end(), '\n') + 1));
  std::vector<std::string_view> header;
  int lineno = 0;
  for (size_t start = 0; start < all.size();) {
    const size_t end = std::min(all.find('\n', start), all.size());
    const std::string_view line = all.substr(start, end - start);
    start = end + 1;
    ++lineno;
    if (line.empty() || line == "\r") continue;
    if (header.empty()) {
      split_line(line, header);
      for (std::string_view h : header) t.header_.emplace_back(h);
      continue;
    }
    const size_t n = split_line(line, t.cells_);
    if (n != t.header_.size())
      throw std::runtime_error(fmt::format("{}:{}: {} cells, but the header has {} columns", path.string(), lineno, n,
                                           t.header_.size()));
    t.lines_.push_back(lineno);
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
