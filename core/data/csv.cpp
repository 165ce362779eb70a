#include "core/data/csv.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <charconv>
#include <fstream>
#include <stdexcept>

namespace xp::data {
namespace {

std::vector<std::string> split_line(const std::string& line) {
  std::vector<std::string> cells;
  size_t start = 0;
  while (true) {
    size_t comma = line.find(',', start);
    std::string cell = line.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!cell.empty() && cell.back() == '\r') cell.pop_back();
    cells.push_back(std::move(cell));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return cells;
}

}  // namespace

CsvTable CsvTable::load(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(fmt::format("{}: cannot open (check the path and the data folder)", path.string()));
  CsvTable t;
  t.path_ = path;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (line.empty() || line == "\r") continue;
    if (line.find('"') != std::string::npos)
      throw std::runtime_error(fmt::format("{}:{}: quoted CSV cells are not supported", path.string(), lineno));
    auto cells = split_line(line);
    if (t.header_.empty()) {
      t.header_ = std::move(cells);
      continue;
    }
    if (cells.size() != t.header_.size())
      throw std::runtime_error(fmt::format("{}:{}: {} cells, but the header has {} columns", path.string(), lineno,
                                           cells.size(), t.header_.size()));
    t.rows_.push_back(std::move(cells));
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
  const std::string& s = rows_[row][col];
  double v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size())
    throw std::runtime_error(
        fmt::format("{}:{}: column '{}': '{}' is not a number", path_.string(), lines_[row], header_[col], s));
  return v;
}

}  // namespace xp::data
