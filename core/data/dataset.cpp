#include "core/data/dataset.h"

#include <fmt/format.h>
#include <zlib.h>

#include <cstring>
#include <numeric>
#include <sstream>

namespace xp::data {

namespace fs = std::filesystem;

namespace {

// The whole file, decompressed when it is gzipped (zlib reads plain files unchanged).
std::vector<uint8_t> read_maybe_gzipped(const fs::path& path) {
  if (!fs::exists(path))
    throw DatasetError(fmt::format("{}: no such file (Fashion-MNIST comes from Debian's dataset-fashion-mnist; "
                                   "run scripts/install_deps.sh)", path.string()));
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw DatasetError(fmt::format("{}: cannot open", path.string()));
  std::vector<uint8_t> out;
  std::vector<uint8_t> buf(1 << 20);
  for (;;) {
    int n = gzread(f, buf.data(), static_cast<unsigned>(buf.size()));
    if (n < 0) {
      int err = 0;
      std::string msg = gzerror(f, &err);
      gzclose(f);
      throw DatasetError(fmt::format("{}: corrupt or truncated gzip stream ({})", path.string(), msg));
    }
    if (n == 0) break;
    out.insert(out.end(), buf.begin(), buf.begin() + n);
  }
  // A gzip stream cut short reads as a clean end in some zlib versions: check the trailer state.
  int err = 0;
  gzerror(f, &err);
  gzclose(f);
  if (err != Z_OK && err != Z_STREAM_END)
    throw DatasetError(fmt::format("{}: corrupt or truncated gzip stream", path.string()));
  return out;
}

uint32_t big_endian_u32(const std::vector<uint8_t>& b, size_t at) {
  return (uint32_t{b[at]} << 24) | (uint32_t{b[at + 1]} << 16) | (uint32_t{b[at + 2]} << 8) | b[at + 3];
}

// Parses an IDX header with the given magic and rank; returns the dimensions.
std::vector<uint32_t> idx_dims(const std::vector<uint8_t>& b, const fs::path& path, uint32_t magic, size_t rank) {
  if (b.size() < 4)
    throw DatasetError(fmt::format("{}: {} bytes is too short for an IDX file", path.string(), b.size()));
  uint32_t got = big_endian_u32(b, 0);
  if (got != magic)
    throw DatasetError(fmt::format("{}: IDX magic is 0x{:08x}, expected 0x{:08x} ({}); is this the right file?",
                                   path.string(), got, magic, rank == 1 ? "u8 labels" : "u8 images"));
  if (b.size() < 4 + 4 * rank)
    throw DatasetError(fmt::format("{}: {} bytes is too short for an IDX header (truncated?)", path.string(), b.size()));
  std::vector<uint32_t> dims(rank);
  size_t payload = 1;
  for (size_t i = 0; i < rank; ++i) payload *= dims[i] = big_endian_u32(b, 4 + 4 * i);
  if (b.size() != 4 + 4 * rank + payload)
    throw DatasetError(fmt::format("{}: header promises {} bytes of data, the file holds {} (truncated?)",
                                   path.string(), payload, b.size() - 4 - 4 * rank));
  return dims;
}

}  // namespace

Dataset load_idx(const fs::path& images, const fs::path& labels, const std::string& name) {
  auto ib = read_maybe_gzipped(images);
  auto lb = read_maybe_gzipped(labels);
  auto idims = idx_dims(ib, images, 0x00000803, 3);
  auto ldims = idx_dims(lb, labels, 0x00000801, 1);
  if (idims[0] != ldims[0])
    throw DatasetError(fmt::format("{} has {} images but {} has {} labels", images.string(), idims[0],
                                   labels.string(), ldims[0]));
  Dataset d;
  d.name = name;
  d.sample_shape = {1, idims[1], idims[2]};
  d.features.resize(ib.size() - 16);
  for (size_t i = 0; i < d.features.size(); ++i) d.features[i] = static_cast<float>(ib[16 + i]) / 255.0f;
  d.labels.assign(lb.begin() + 8, lb.end());
  for (int32_t y : d.labels) d.num_classes = std::max(d.num_classes, y + 1);
  return d;
}

Dataset load_fashion_mnist(const fs::path& dir, const std::string& split) {
  if (split != "train" && split != "test")
    throw DatasetError(fmt::format("fashion-mnist split must be 'train' or 'test', got '{}'", split));
  const std::string prefix = split == "train" ? "train" : "t10k";
  Dataset d = load_idx(dir / (prefix + "-images-idx3-ubyte.gz"), dir / (prefix + "-labels-idx1-ubyte.gz"),
                       "fashion_mnist/" + split);
  d.num_classes = 10;
  return d;
}

Dataset load_digits(const fs::path& path) {
  auto bytes = read_maybe_gzipped(path);
  std::istringstream in(std::string(bytes.begin(), bytes.end()));
  Dataset d;
  d.name = "digits";
  d.sample_shape = {64};
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    std::vector<double> cells;
    std::istringstream row(line);
    std::string cell;
    while (std::getline(row, cell, ',')) {
      char* end = nullptr;
      double v = std::strtod(cell.c_str(), &end);
      if (cell.empty() || *end != '\0')
        throw DatasetError(fmt::format("{}:{}: '{}' is not a number", path.string(), line_no, cell));
      cells.push_back(v);
    }
    if (cells.size() != 65)
      throw DatasetError(fmt::format("{}:{}: {} columns, expected 65 (64 pixels and the label)", path.string(),
                                     line_no, cells.size()));
    for (int i = 0; i < 64; ++i) d.features.push_back(static_cast<float>(cells[static_cast<size_t>(i)] / 16.0));
    d.labels.push_back(static_cast<int32_t>(cells[64]));
  }
  if (d.labels.empty()) throw DatasetError(fmt::format("{}: no rows", path.string()));
  d.num_classes = 10;
  return d;
}

fs::path default_fashion_mnist_dir() { return "/usr/share/datasets/fashion-mnist"; }
fs::path default_digits_path() { return "/usr/lib/python3/dist-packages/sklearn/datasets/data/digits.csv.gz"; }

Dataset subset(const Dataset& d, std::span<const int64_t> rows) {
  Dataset out;
  out.name = d.name;
  out.sample_shape = d.sample_shape;
  out.num_classes = d.num_classes;
  const int64_t f = d.sample_size();
  out.features.resize(rows.size() * static_cast<size_t>(f));
  out.labels.resize(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    std::memcpy(out.features.data() + i * static_cast<size_t>(f), d.features.data() + rows[i] * f,
                static_cast<size_t>(f) * sizeof(float));
    out.labels[i] = d.labels[static_cast<size_t>(rows[i])];
  }
  return out;
}

std::vector<int64_t> permutation(int64_t n, runtime::RngStream rng) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  std::iota(p.begin(), p.end(), 0);
  for (int64_t i = n - 1; i > 0; --i) std::swap(p[static_cast<size_t>(i)], p[rng.below(static_cast<uint64_t>(i + 1))]);
  return p;
}

std::pair<Dataset, Dataset> split(const Dataset& d, int64_t first, runtime::RngStream rng) {
  if (first < 0 || first > d.size())
    throw DatasetError(fmt::format("{}: cannot split off {} of {} samples", d.name, first, d.size()));
  auto p = permutation(d.size(), rng);
  std::span<const int64_t> all(p);
  return {subset(d, all.first(static_cast<size_t>(first))), subset(d, all.subspan(static_cast<size_t>(first)))};
}

void binarize(Dataset& d, float threshold) {
  for (float& v : d.features) v = v >= threshold ? 1.0f : 0.0f;
}

tensor::Tensor batch_features(const Dataset& d, std::span<const int64_t> rows) {
  tensor::Shape shape{static_cast<int64_t>(rows.size())};
  shape.insert(shape.end(), d.sample_shape.begin(), d.sample_shape.end());
  tensor::Tensor t = tensor::Tensor::empty(shape, tensor::DType::kF32);
  const int64_t f = d.sample_size();
  float* out = t.data<float>();
  for (size_t i = 0; i < rows.size(); ++i)
    std::memcpy(out + static_cast<int64_t>(i) * f, d.features.data() + rows[i] * f, static_cast<size_t>(f) * sizeof(float));
  return t;
}

std::vector<int32_t> batch_labels(const Dataset& d, std::span<const int64_t> rows) {
  std::vector<int32_t> out(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) out[i] = d.labels[static_cast<size_t>(rows[i])];
  return out;
}

}  // namespace xp::data
