#include "core/results/results_file.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstring>

#include "core/results/h5.h"

namespace xp::results {
namespace {

// Rows buffered before a write, and rows per HDF5 chunk (at most; see create_missing_columns). A
// chunk is stored, shuffled and deflated whole even when the table ends inside it, so a 64k-row
// chunk made every one-row table cost 512 KB of compression per column (a 1-request simulation
// spent 60 ms closing its file); 8k rows compress large tables as well.
constexpr hsize_t kBufferRows = 64 * 1024;
constexpr hsize_t kChunkRows = 8 * 1024;
constexpr hsize_t kMinChunkRows = 64;
constexpr int kDeflateLevel = 1;

hid_t native_type(ColumnType t) {
  switch (t) {
    case ColumnType::kInt64: return H5T_NATIVE_INT64;
    case ColumnType::kUInt64: return H5T_NATIVE_UINT64;
    case ColumnType::kInt32: return H5T_NATIVE_INT32;
    case ColumnType::kUInt32: return H5T_NATIVE_UINT32;
    case ColumnType::kUInt16: return H5T_NATIVE_UINT16;
    case ColumnType::kUInt8: return H5T_NATIVE_UINT8;
    case ColumnType::kFloat64: return H5T_NATIVE_DOUBLE;
    case ColumnType::kFloat32: return H5T_NATIVE_FLOAT;
  }
  return H5T_NATIVE_DOUBLE;
}

template <class T>
void put(std::vector<std::byte>& buf, T v) {
  size_t n = buf.size();
  buf.resize(n + sizeof(T));
  std::memcpy(buf.data() + n, &v, sizeof(T));
}

void put_cell(std::vector<std::byte>& buf, ColumnType t, const Cell& c) {
  auto as_double = [&] { return std::visit([](auto x) { return static_cast<double>(x); }, c); };
  auto as_int = [&] {
    return std::visit([](auto x) { return static_cast<int64_t>(x); }, c);
  };
  switch (t) {
    case ColumnType::kInt64: put<int64_t>(buf, as_int()); break;
    case ColumnType::kUInt64:
      put<uint64_t>(buf, std::holds_alternative<uint64_t>(c) ? std::get<uint64_t>(c) : static_cast<uint64_t>(as_int()));
      break;
    case ColumnType::kInt32: put<int32_t>(buf, static_cast<int32_t>(as_int())); break;
    case ColumnType::kUInt32: put<uint32_t>(buf, static_cast<uint32_t>(as_int())); break;
    case ColumnType::kUInt16: put<uint16_t>(buf, static_cast<uint16_t>(as_int())); break;
    case ColumnType::kUInt8: put<uint8_t>(buf, static_cast<uint8_t>(as_int())); break;
    case ColumnType::kFloat64: put<double>(buf, as_double()); break;
    case ColumnType::kFloat32: put<float>(buf, static_cast<float>(as_double())); break;
  }
}

void write_string_attr(hid_t obj, const std::string& name, const std::string& value) {
  Handle type = utf8_string_type();
  Handle space = space_handle(H5Screate(H5S_SCALAR), "scalar space");
  Handle a = attr_handle(H5Acreate2(obj, name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                         "create attribute " + name);
  const char* p = value.c_str();
  h5_check(H5Awrite(a.get(), type.get(), &p), "write attribute " + name);
}

std::string dataset_name(const std::string& group, const std::string& col) {
  return group == "/" ? "/" + col : group + "/" + col;
}

class H5Table final : public Table {
 public:
  H5Table(hid_t file, std::string file_name, std::string group, std::vector<ColumnSpec> cols)
      : file_name_(std::move(file_name)), group_(std::move(group)), cols_(std::move(cols)) {
    group_handle_ = ensure_group(file, group_);
    for (const auto& c : cols_) {
      Column col;
      col.spec = c;
      if (H5Lexists(group_handle_.get(), c.name.c_str(), H5P_DEFAULT) > 0) {
        std::string path = dataset_name(group_, c.name);
        col.ds = dataset_handle(H5Dopen2(group_handle_.get(), c.name.c_str(), H5P_DEFAULT), "open " + path);
        Handle space = space_handle(H5Dget_space(col.ds.get()), "space of " + path);
        hsize_t n = 0;
        H5Sget_simple_extent_dims(space.get(), &n, nullptr);
        col.written = static_cast<int64_t>(n);
      }
      columns_.push_back(std::move(col));
    }
  }

  void append(const std::vector<Cell>& row) override {
    if (row.size() != columns_.size())
      throw H5Error(fmt::format("table {}: row has {} values for {} columns", group_, row.size(), columns_.size()));
    for (size_t i = 0; i < row.size(); ++i) put_cell(columns_[i].buffer, columns_[i].spec.type, row[i]);
    if (++buffered_ >= static_cast<int64_t>(kBufferRows)) flush();
  }

  int64_t rows() const override { return (columns_.empty() ? 0 : columns_[0].written) + buffered_; }

  void flush() override {
    if (buffered_ == 0) return;  // no rows yet: the first rows will size the chunks
    create_missing_columns();
    for (auto& c : columns_) {
      hsize_t old_n = static_cast<hsize_t>(c.written), add = static_cast<hsize_t>(buffered_);
      hsize_t new_n = old_n + add;
      std::string what = file_name_ + ":" + dataset_name(group_, c.spec.name);
      h5_check(H5Dset_extent(c.ds.get(), &new_n), "extend " + what);
      Handle file_space = space_handle(H5Dget_space(c.ds.get()), "space " + what);
      h5_check(H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &old_n, nullptr, &add, nullptr), "select " + what);
      Handle mem_space = space_handle(H5Screate_simple(1, &add, nullptr), "mem space");
      h5_check(H5Dwrite(c.ds.get(), native_type(c.spec.type), mem_space.get(), file_space.get(), H5P_DEFAULT,
                        c.buffer.data()),
               "write " + what);
      c.written = static_cast<int64_t>(new_n);
      c.buffer.clear();
    }
    buffered_ = 0;
  }

  void truncate(int64_t n) override {
    flush();
    for (auto& c : columns_) {
      if (c.written <= n) continue;
      hsize_t dims = static_cast<hsize_t>(n);
      h5_check(H5Dset_extent(c.ds.get(), &dims), "truncate " + dataset_name(group_, c.spec.name));
      c.written = n;
    }
  }

  const std::vector<ColumnSpec>& columns() const override { return cols_; }

  // Datasets are made at the first flush with rows, when the rows in hand size their chunks, or
  // when the file is marked complete (a table that never got a row still has its columns): a chunk is
  // deflated whole however few rows it holds, and a one-request simulation's 45 one-row columns
  // at 8k-row chunks spent ~10 ms compressing zeros. A table that starts small and grows keeps
  // its small chunks, which costs some compression, not correctness.
  void create_missing_columns() {
    const auto rows = static_cast<hsize_t>(std::max<int64_t>(buffered_, 1));
    hsize_t chunk = kMinChunkRows;
    while (chunk < rows && chunk < kChunkRows) chunk *= 2;
    for (auto& c : columns_) {
      if (c.ds.valid()) continue;
      std::string path = dataset_name(group_, c.spec.name);
      hsize_t dims = 0, maxdims = H5S_UNLIMITED;
      Handle space = space_handle(H5Screate_simple(1, &dims, &maxdims), "space for " + path);
      Handle dcpl = plist_handle(H5Pcreate(H5P_DATASET_CREATE), "dcpl");
      h5_check(H5Pset_chunk(dcpl.get(), 1, &chunk), "chunk " + path);
      h5_check(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER), "fill time " + path);  // every row is written
      h5_check(H5Pset_shuffle(dcpl.get()), "shuffle " + path);
      h5_check(H5Pset_deflate(dcpl.get(), kDeflateLevel), "deflate " + path);
      c.ds = dataset_handle(H5Dcreate2(group_handle_.get(), c.spec.name.c_str(), native_type(c.spec.type), space.get(),
                                       H5P_DEFAULT, dcpl.get(), H5P_DEFAULT),
                            "create " + path);
      write_string_attr(c.ds.get(), "units", c.spec.units);
      write_string_attr(c.ds.get(), "description", c.spec.description);
    }
  }

 private:
  struct Column {
    ColumnSpec spec;
    Handle ds;
    int64_t written = 0;
    std::vector<std::byte> buffer;
  };
  std::string file_name_;  // for messages: a full disk should name the file it could not write
  std::string group_;
  std::vector<ColumnSpec> cols_;
  Handle group_handle_;
  std::vector<Column> columns_;
  int64_t buffered_ = 0;
};

class H5Writer final : public ResultsWriter {
 public:
  H5Writer(Handle file, std::filesystem::path path) : file_(std::move(file)), path_(std::move(path)) {}
  ~H5Writer() override {
    try {
      flush();
    } catch (...) {
      // Destructors must not throw; a failed final flush leaves `complete` unset, which readers see.
    }
    tables_.clear();
  }

  void set_attr(const std::string& object_path, const std::string& name, const AttrValue& v) override {
    Handle obj = ensure_group(file_.get(), object_path);
    if (H5Aexists(obj.get(), name.c_str()) > 0) h5_check(H5Adelete(obj.get(), name.c_str()), "delete attribute " + name);
    std::visit(
        [&](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, std::string>) {
            write_string_attr(obj.get(), name, x);
          } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
            Handle type = utf8_string_type();
            hsize_t n = x.size();
            Handle space = space_handle(H5Screate_simple(1, &n, nullptr), "attr space");
            Handle a = attr_handle(H5Acreate2(obj.get(), name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
                                   "create attribute " + name);
            std::vector<const char*> ptrs;
            for (const auto& s : x) ptrs.push_back(s.c_str());
            if (n) h5_check(H5Awrite(a.get(), type.get(), ptrs.data()), "write attribute " + name);
          } else {
            hid_t t = std::is_same_v<T, bool> ? H5T_NATIVE_UINT8 : std::is_same_v<T, int64_t> ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE;
            Handle space = space_handle(H5Screate(H5S_SCALAR), "scalar space");
            Handle a = attr_handle(H5Acreate2(obj.get(), name.c_str(), t, space.get(), H5P_DEFAULT, H5P_DEFAULT),
                                   "create attribute " + name);
            if constexpr (std::is_same_v<T, bool>) {
              uint8_t b = x ? 1 : 0;
              h5_check(H5Awrite(a.get(), t, &b), "write attribute " + name);
            } else {
              h5_check(H5Awrite(a.get(), t, &x), "write attribute " + name);
            }
          }
        },
        v);
  }

  void write_text(const std::string& dataset_path, const std::string& text) override {
    if (link_exists(file_.get(), dataset_path)) h5_check(H5Ldelete(file_.get(), dataset_path.c_str(), H5P_DEFAULT), "replace " + dataset_path);
    size_t slash = dataset_path.rfind('/');
    if (slash > 0) ensure_group(file_.get(), dataset_path.substr(0, slash));
    Handle type = utf8_string_type();
    Handle space = space_handle(H5Screate(H5S_SCALAR), "scalar space");
    Handle ds = dataset_handle(H5Dcreate2(file_.get(), dataset_path.c_str(), type.get(), space.get(), H5P_DEFAULT,
                                          H5P_DEFAULT, H5P_DEFAULT),
                               "create " + dataset_path);
    const char* p = text.c_str();
    // A string is converted through HDF5's type-conversion buffer, 1 MiB by default and zeroed on
    // every write: ~14 ms of page faults for the two config copies. One element needs a few bytes.
    Handle dxpl = plist_handle(H5Pcreate(H5P_DATASET_XFER), "dxpl");
    h5_check(H5Pset_buffer(dxpl.get(), 4096, nullptr, nullptr), "conversion buffer for " + dataset_path);
    h5_check(H5Dwrite(ds.get(), type.get(), H5S_ALL, H5S_ALL, dxpl.get(), &p), "write " + dataset_path);
  }

  Table& table(const std::string& group_path, const std::vector<ColumnSpec>& columns) override {
    auto it = tables_.find(group_path);
    if (it != tables_.end()) return *it->second;
    auto t = std::make_unique<H5Table>(file_.get(), path_.string(), group_path, columns);
    return *tables_.emplace(group_path, std::move(t)).first->second;
  }

  std::map<std::string, int64_t> table_rows() const override {
    std::map<std::string, int64_t> out;
    for (const auto& [k, t] : tables_) out[k] = t->rows();
    return out;
  }

  void flush() override {
    for (auto& [k, t] : tables_) t->flush();
    h5_check(H5Fflush(file_.get(), H5F_SCOPE_GLOBAL), "flush " + path_.string());
  }

  void mark_complete() override {
    flush();
    for (auto& [k, t] : tables_) t->create_missing_columns();
    set_attr("/", "complete", int64_t{1});
    h5_check(H5Fflush(file_.get(), H5F_SCOPE_GLOBAL), "flush " + path_.string());
  }

  const std::filesystem::path& path() const override { return path_; }

 private:
  Handle file_;
  std::filesystem::path path_;
  std::map<std::string, std::unique_ptr<H5Table>> tables_;
};

AttrValue read_attr(hid_t a) {
  Handle type = type_handle(H5Aget_type(a), "attribute type");
  Handle space = space_handle(H5Aget_space(a), "attribute space");
  hssize_t n = H5Sget_simple_extent_npoints(space.get());
  H5T_class_t cls = H5Tget_class(type.get());
  if (cls == H5T_STRING) {
    if (n == 0) return std::vector<std::string>();
    Handle mem = utf8_string_type();
    std::vector<char*> ptrs(static_cast<size_t>(n));
    h5_check(H5Aread(a, mem.get(), ptrs.data()), "read string attribute");
    std::vector<std::string> out;
    for (char* p : ptrs) out.emplace_back(p ? p : "");
    H5Dvlen_reclaim(mem.get(), space.get(), H5P_DEFAULT, ptrs.data());
    if (H5Sget_simple_extent_type(space.get()) == H5S_SCALAR) return out.empty() ? std::string() : out[0];
    return out;
  }
  if (cls == H5T_FLOAT) {
    double d = 0;
    h5_check(H5Aread(a, H5T_NATIVE_DOUBLE, &d), "read attribute");
    return d;
  }
  int64_t i = 0;
  h5_check(H5Aread(a, H5T_NATIVE_INT64, &i), "read attribute");
  return i;
}

herr_t collect_attr(hid_t loc, const char* name, const H5A_info_t*, void* out) {
  Handle a = attr_handle(H5Aopen(loc, name, H5P_DEFAULT), std::string("open attribute ") + name);
  static_cast<std::vector<std::pair<std::string, AttrValue>>*>(out)->emplace_back(name, read_attr(a.get()));
  return 0;
}

struct VisitState {
  std::vector<std::string> tables;
};

herr_t visit_object(hid_t, const char* name, const H5O_info_t* info, void* data) {
  if (info->type != H5O_TYPE_DATASET) return 0;
  std::string path = std::string("/") + name;
  size_t slash = path.rfind('/');
  std::string group = slash == 0 ? "/" : path.substr(0, slash);
  if (group == "/") return 0;  // /config and friends are not tables
  auto& t = static_cast<VisitState*>(data)->tables;
  if (std::find(t.begin(), t.end(), group) == t.end()) t.push_back(group);
  return 0;
}

}  // namespace

std::string attr_to_string(const AttrValue& v) {
  return std::visit(
      [](const auto& x) -> std::string {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::string>) return x;
        else if constexpr (std::is_same_v<T, std::vector<std::string>>) return fmt::format("[{}]", fmt::join(x, ", "));
        else if constexpr (std::is_same_v<T, bool>) return x ? "true" : "false";
        else if constexpr (std::is_same_v<T, double>) return fmt::format("{:.6g}", x);
        else return std::to_string(x);
      },
      v);
}

std::unique_ptr<ResultsWriter> ResultsWriter::create(const std::filesystem::path& path) {
  disable_hdf5_error_printing();
  Handle fcpl = plist_handle(H5Pcreate(H5P_FILE_CREATE), "fcpl");
  track_creation_order(fcpl.get());
  Handle f = file_handle(H5Fcreate(path.c_str(), H5F_ACC_TRUNC, fcpl.get(), H5P_DEFAULT), "create " + path.string());
  auto w = std::make_unique<H5Writer>(std::move(f), path);
  w->set_attr("/", "schema", std::string(kSchemaName));
  w->set_attr("/", "schema_version", int64_t{kSchemaVersion});
  return w;
}

std::unique_ptr<ResultsWriter> ResultsWriter::open_existing(const std::filesystem::path& path) {
  disable_hdf5_error_printing();
  Handle f = file_handle(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), "open " + path.string());
  if (H5Aexists(f.get(), "complete") > 0) h5_check(H5Adelete(f.get(), "complete"), "clear complete");
  return std::make_unique<H5Writer>(std::move(f), path);
}

struct ResultsReader::Impl {
  Handle file;
};

ResultsReader::ResultsReader(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ResultsReader::~ResultsReader() = default;
ResultsReader::ResultsReader(ResultsReader&&) noexcept = default;
ResultsReader& ResultsReader::operator=(ResultsReader&&) noexcept = default;

std::unique_ptr<ResultsReader> ResultsReader::open(const std::filesystem::path& path) {
  disable_hdf5_error_printing();
  if (!std::filesystem::exists(path)) throw H5Error(fmt::format("{}: no such file", path.string()));
  auto impl = std::make_unique<Impl>();
  hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0) {
    // A reader must be able to look at a live run: another process's writer holds HDF5's file
    // lock for the whole run, so the reader goes without it (and reads what was last flushed).
    // Only then: a file this process has open already must be reopened with its own properties.
    Handle fapl{h5_check(H5Pcreate(H5P_FILE_ACCESS), "file access list"), H5Pclose};
    h5_check(H5Pset_file_locking(fapl.get(), false, true), "file locking off");
    id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get());
  }
  impl->file = file_handle(id, "open " + path.string());
  return std::unique_ptr<ResultsReader>(new ResultsReader(std::move(impl)));
}

std::vector<std::pair<std::string, AttrValue>> ResultsReader::attrs(const std::string& object_path) const {
  std::vector<std::pair<std::string, AttrValue>> out;
  if (!link_exists(impl_->file.get(), object_path) && object_path != "/") return out;
  Handle obj{h5_check(H5Oopen(impl_->file.get(), object_path.c_str(), H5P_DEFAULT), "open " + object_path), H5Oclose};
  hsize_t idx = 0;
  if (H5Aiterate2(obj.get(), H5_INDEX_CRT_ORDER, H5_ITER_INC, &idx, collect_attr, &out) < 0) {
    out.clear();  // no creation order tracked: fall back to name order
    idx = 0;
    h5_check(H5Aiterate2(obj.get(), H5_INDEX_NAME, H5_ITER_INC, &idx, collect_attr, &out), "attributes of " + object_path);
  }
  return out;
}

std::optional<AttrValue> ResultsReader::attr(const std::string& object_path, const std::string& name) const {
  for (auto& [k, v] : attrs(object_path))
    if (k == name) return v;
  return std::nullopt;
}

std::optional<std::string> ResultsReader::text(const std::string& dataset_path) const {
  if (!link_exists(impl_->file.get(), dataset_path)) return std::nullopt;
  Handle ds = dataset_handle(H5Dopen2(impl_->file.get(), dataset_path.c_str(), H5P_DEFAULT), "open " + dataset_path);
  Handle mem = utf8_string_type();
  Handle space = space_handle(H5Dget_space(ds.get()), "space");
  char* p = nullptr;
  h5_check(H5Dread(ds.get(), mem.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, &p), "read " + dataset_path);
  std::string out = p ? p : "";
  H5Dvlen_reclaim(mem.get(), space.get(), H5P_DEFAULT, &p);
  return out;
}

std::vector<std::string> ResultsReader::tables() const {
  VisitState st;
  h5_check(H5Ovisit2(impl_->file.get(), H5_INDEX_NAME, H5_ITER_INC, visit_object, &st, H5O_INFO_BASIC), "visit file");
  return st.tables;
}

TableData ResultsReader::read_table(const std::string& group_path, int64_t max_rows) const {
  TableData out;
  Handle g = group_handle(H5Gopen2(impl_->file.get(), group_path.c_str(), H5P_DEFAULT), "open " + group_path);
  H5G_info_t info;
  h5_check(H5Gget_info(g.get(), &info), "info " + group_path);
  // Columns come back in creation order where the file tracks it (ours do), else by name.
  H5_index_t order = H5_INDEX_CRT_ORDER;
  char probe[8];
  if (info.nlinks && H5Lget_name_by_idx(g.get(), ".", order, H5_ITER_INC, 0, probe, sizeof(probe), H5P_DEFAULT) < 0) {
    H5Eclear2(H5E_DEFAULT);
    order = H5_INDEX_NAME;
  }
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    char name[256];
    h5_check(H5Lget_name_by_idx(g.get(), ".", order, H5_ITER_INC, i, name, sizeof(name), H5P_DEFAULT), "column name");
    Handle ds = dataset_handle(H5Dopen2(g.get(), name, H5P_DEFAULT), std::string("open column ") + name);
    Handle space = space_handle(H5Dget_space(ds.get()), "space");
    if (H5Sget_simple_extent_ndims(space.get()) != 1) continue;
    hsize_t n = 0;
    H5Sget_simple_extent_dims(space.get(), &n, nullptr);
    ColumnSpec spec;
    spec.name = name;
    for (const char* key : {"units", "description"}) {
      if (H5Aexists(ds.get(), key) > 0) {
        Handle a = attr_handle(H5Aopen(ds.get(), key, H5P_DEFAULT), "open units");
        (key[0] == 'u' ? spec.units : spec.description) = attr_to_string(read_attr(a.get()));
      }
    }
    hsize_t take = max_rows >= 0 ? std::min<hsize_t>(n, static_cast<hsize_t>(max_rows)) : n;
    std::vector<double> values(take);
    if (take) {
      hsize_t start = 0;
      h5_check(H5Sselect_hyperslab(space.get(), H5S_SELECT_SET, &start, nullptr, &take, nullptr), "select");
      Handle mem = space_handle(H5Screate_simple(1, &take, nullptr), "mem");
      h5_check(H5Dread(ds.get(), H5T_NATIVE_DOUBLE, mem.get(), space.get(), H5P_DEFAULT, values.data()), "read column");
    }
    out.rows = static_cast<int64_t>(n);
    out.columns.push_back(spec);
    out.values.push_back(std::move(values));
  }
  return out;
}

bool ResultsReader::complete() const {
  auto v = attr("/", "complete");
  return v && std::holds_alternative<int64_t>(*v) && std::get<int64_t>(*v) == 1;
}

}  // namespace xp::results
