#include "core/data/dataset.h"

#include <fmt/format.h>
#include <sys/mman.h>
#include <zlib.h>

#include <cstring>
#include <fstream>
#include <numeric>
#include <sstream>

namespace xp::data {

namespace fs = std::filesystem;

namespace {

// An empty float vector with room for n, its pages transparent huge pages where the kernel
// allows it (its "madvise" mode): filling a 190 MB image set then takes ~100 page faults
// instead of ~50,000, which cost more than the filling on a VM.
std::vector<float> float_buffer(size_t n) {
  std::vector<float> v;
  v.reserve(n);
  constexpr uintptr_t kHuge = uintptr_t{2} << 20;
  const uintptr_t lo = (reinterpret_cast<uintptr_t>(v.data()) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t hi = reinterpret_cast<uintptr_t>(v.data() + n) & ~(kHuge - 1);
  if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE);  // a hint: failure changes nothing
  return v;
}

// A gzip file's own record of its decompressed size (the last four bytes, mod 2^32), so the
// buffer is allocated once; 0 when the file is not gzip. Only a hint: reading checks the stream.
size_t gzip_size_hint(const fs::path& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  unsigned char head[2] = {}, tail[4] = {};
  const std::streamoff size = in.tellg();
  if (!in || size < 18) return 0;
  in.seekg(0).read(reinterpret_cast<char*>(head), 2);
  in.seekg(size - 4).read(reinterpret_cast<char*>(tail), 4);
  if (!in || head[0] != 0x1f || head[1] != 0x8b) return 0;
  return size_t{tail[0]} | size_t{tail[1]} << 8 | size_t{tail[2]} << 16 | size_t{tail[3]} << 24;
}

// The whole file, decompressed when it is gzipped (zlib reads plain files unchanged).
std::vector<uint8_t> read_maybe_gzipped(const fs::path& path) {
  if (!fs::exists(path))
    throw DatasetError(fmt::format("{}: no such file (Fashion-MNIST comes from Debian's dataset-fashion-mnist; "
                                   "run scripts/install_deps.sh)", path.string()));
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw DatasetError(fmt::format("{}: cannot open", path.string()));
  std::vector<uint8_t> out;
  out.reserve(gzip_size_hint(path));
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
  // Converted while copied, then scaled in place: a resize would first write zeros over it all.
  d.features = float_buffer(ib.size() - 16);
  d.features.assign(ib.begin() + 16, ib.end());
  for (float& v : d.features) v /= 255.0f;
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
  out.features = float_buffer(rows.size() * static_cast<size_t>(f));
  out.labels.resize(rows.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    const float* row = d.features.data() + rows[i] * f;
    out.features.insert(out.features.end(), row, row + f);
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

namespace {
std::vector<int64_t> split_order(const Dataset& d, int64_t first, runtime::RngStream rng) {
  if (first < 0 || first > d.size())
    throw DatasetError(fmt::format("{}: cannot split off {} of {} samples", d.name, first, d.size()));
  return permutation(d.size(), rng);
}
}  // namespace

std::pair<Dataset, Dataset> split(const Dataset& d, int64_t first, runtime::RngStream rng) {
  const auto order = split_order(d, first, rng);
  std::span<const int64_t> all(order);
  return {subset(d, all.first(static_cast<size_t>(first))), subset(d, all.subspan(static_cast<size_t>(first)))};
}

Dataset sample(const Dataset& d, int64_t n, runtime::RngStream rng) {
  const auto order = split_order(d, n, rng);
  return subset(d, std::span<const int64_t>(order).first(static_cast<size_t>(n)));
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
