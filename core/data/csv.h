// A small CSV reader for profiles and request traces: a header row, then rows of cells. Cells
// are looked up by column name, and every error names the file, the line and the column, so a
// bad profile or trace row is reported, never silently mis-read. Quoted cells are not needed
// by these files and are rejected. The file's text is kept once and cells are views into it: a
// 3 MB profile is read in milliseconds, with no allocation per cell. The table is a plain value.
#pragma once
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace xp::data {

class CsvTable {
 public:
  // Throws std::runtime_error naming the file on a missing file or a ragged row.
  static CsvTable load(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  size_t num_rows() const { return lines_.size(); }
  const std::vector<std::string>& header() const { return header_; }
  bool has_column(const std::string& name) const { return index_of(name).has_value(); }
  // Throws, listing the columns that exist, when `name` is not one of them.
  size_t column(const std::string& name) const;

  std::string_view cell(size_t row, size_t col) const { return cells_[row * header_.size() + col]; }
  bool empty_cell(size_t row, size_t col) const { return cell(row, col).empty(); }
  // The cell as a number; throws "file:line: column 'c': 'x' is not a number".
  double number(size_t row, size_t col) const;
  int line_of(size_t row) const { return lines_[row]; }

 private:
  std::optional<size_t> index_of(const std::string& name) const;
  std::filesystem::path path_;
  std::shared_ptr<const std::string> text_;  // shared: copies of the table view the same text
  std::vector<std::string> header_;
  std::vector<std::string_view> cells_;      // row-major, header_.size() per row
  std::vector<int> lines_;
};

}  // namespace xp::data
