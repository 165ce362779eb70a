// A small CSV reader for profiles and request traces: a header row, then rows of cells. Cells
// are looked up by column name, and every error names the file, the line and the column, so a
// bad profile or trace row is reported, never silently mis-read. Quoted cells are not needed
// by these files and are rejected. The file is memory-mapped and each cell is a 4-byte offset
// into it: a 3 MB profile is read in a few milliseconds. Fresh memory is what costs here (a page
// fault per 4 KiB; 16-byte views of every cell and a copy of the text took 40 ms on a 2-core VM).
// The table is a plain value.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace xp::data {

// Memory for large arrays filled at once, mapped with its pages already present: touching fresh
// pages one fault at a time was most of a profile's load time on a VM (about 10 µs a fault).
template <class T>
struct PrefaultedAllocator {
  using value_type = T;
  PrefaultedAllocator() = default;
  template <class U>
  PrefaultedAllocator(const PrefaultedAllocator<U>&) {}
  T* allocate(size_t n);
  void deallocate(T* p, size_t n);
  bool operator==(const PrefaultedAllocator&) const { return true; }
};

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

  std::string_view cell(size_t row, size_t col) const {
    // A row stores where each of its cells starts and, last, where a next cell would: one past
    // the row's text. A cell ends one before the next one starts (its comma).
    const uint32_t* at = &starts_[row * (header_.size() + 1) + col];
    return std::string_view(text_->data() + at[0], at[1] - 1 - at[0]);
  }
  bool empty_cell(size_t row, size_t col) const { return cell(row, col).empty(); }
  // The cell as a number; throws "file:line: column 'c': 'x' is not a number".
  double number(size_t row, size_t col) const;
  int line_of(size_t row) const { return lines_[row]; }

 private:
  std::optional<size_t> index_of(const std::string& name) const;
  std::filesystem::path path_;
  std::shared_ptr<const std::string_view> text_;  // the mapped file, shared by copies of the table
  std::vector<std::string> header_;
  std::vector<uint32_t, PrefaultedAllocator<uint32_t>> starts_;  // row-major, header_.size() + 1 per row
  std::vector<int> lines_;
};

}  // namespace xp::data
