// results.h5, one per job (README, "Reading results"): provenance attributes on `/`, the resolved config
// as a string dataset `/config`, `/summary` scalar attributes, and tables as groups of equal-
// length 1-D column datasets (chunked 64 Ki rows, deflate 4 + shuffle, extendible, each with
// `units` and `description`). `complete` = 1 is written last by mark_complete(), so a killed
// run is never mistaken for a finished one. Reading needs no plugin: h5py and
// scripts/results.py read it directly.
//
// Ownership: a ResultsWriter owns its file handle; tables are owned by the writer. Writes throw
// H5Error on failure. Not thread-safe.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace xp::results {

inline constexpr int kSchemaVersion = 1;
inline constexpr const char* kSchemaName = "exp-results";

using AttrValue = std::variant<bool, int64_t, double, std::string, std::vector<std::string>>;
std::string attr_to_string(const AttrValue& v);

enum class ColumnType { kInt64, kUInt64, kInt32, kUInt32, kUInt16, kUInt8, kFloat64, kFloat32 };

struct ColumnSpec {
  std::string name;
  ColumnType type = ColumnType::kFloat64;
  std::string units;        // "s", "tokens", "bytes", "" for dimensionless
  std::string description;  // one line for a person reading the file
};

using Cell = std::variant<int64_t, uint64_t, double>;

class Table {
 public:
  virtual ~Table() = default;
  virtual void append(const std::vector<Cell>& row) = 0;  // one value per column, in order
  virtual int64_t rows() const = 0;                        // written + buffered
  virtual void flush() = 0;
  // Drops rows past `rows` (used on resume to return to the checkpointed state).
  virtual void truncate(int64_t rows) = 0;
  virtual const std::vector<ColumnSpec>& columns() const = 0;
};

class ResultsWriter {
 public:
  // Both throw H5Error (core/results/h5.h; a std::runtime_error) naming the file.
  static std::unique_ptr<ResultsWriter> create(const std::filesystem::path& path);
  // Re-opens an existing file read-write (resume); `complete` is cleared.
  static std::unique_ptr<ResultsWriter> open_existing(const std::filesystem::path& path);
  virtual ~ResultsWriter() = default;

  virtual void set_attr(const std::string& object_path, const std::string& name, const AttrValue& v) = 0;
  virtual void write_text(const std::string& dataset_path, const std::string& text) = 0;
  // Creates the table (or opens it when it exists with the same columns).
  virtual Table& table(const std::string& group_path, const std::vector<ColumnSpec>& columns) = 0;
  virtual std::map<std::string, int64_t> table_rows() const = 0;  // every table opened so far
  virtual void flush() = 0;                                        // buffers + HDF5 metadata to disk
  virtual void mark_complete() = 0;
  virtual const std::filesystem::path& path() const = 0;
};

struct TableData {
  std::vector<ColumnSpec> columns;
  std::vector<std::vector<double>> values;  // one vector per column (integers converted)
  int64_t rows = 0;
};

class ResultsReader {
 public:
  // Throws H5Error (a std::runtime_error) naming the file when it is missing or not a results file.
  static std::unique_ptr<ResultsReader> open(const std::filesystem::path& path);
  ~ResultsReader();
  ResultsReader(ResultsReader&&) noexcept;
  ResultsReader& operator=(ResultsReader&&) noexcept;

  std::vector<std::pair<std::string, AttrValue>> attrs(const std::string& object_path) const;
  std::optional<AttrValue> attr(const std::string& object_path, const std::string& name) const;
  std::optional<std::string> text(const std::string& dataset_path) const;
  std::vector<std::string> tables() const;  // group paths that hold column datasets
  TableData read_table(const std::string& group_path, int64_t max_rows = -1) const;
  bool complete() const;

 private:
  struct Impl;
  explicit ResultsReader(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace xp::results
