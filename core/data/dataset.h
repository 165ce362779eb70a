// In-memory classification datasets (docs/architecture.md, core/data): Fashion-MNIST from Debian's
// gzipped IDX files, the 8×8 digits CSV for fast tests, deterministic shuffles and splits, input
// binarisation, and batches as tensors. Features are f32 scaled to [0, 1]. Every load error names
// the file and what is wrong with it. Datasets are plain values.
#pragma once
#include <cstdint>
#include <filesystem>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/runtime/rng.h"
#include "core/tensor/tensor.h"

namespace xp::data {

class DatasetError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct Dataset {
  std::string name;
  tensor::Shape sample_shape;   // e.g. {1, 28, 28} or {64}
  int32_t num_classes = 0;
  std::vector<float> features;  // [size, prod(sample_shape)], row-major
  std::vector<int32_t> labels;

  int64_t size() const { return static_cast<int64_t>(labels.size()); }
  int64_t sample_size() const { return tensor::numel_of(sample_shape); }
};

// An IDX image file (magic 0x00000803, u8 pixels) and its label file (0x00000801), gzipped or
// not; pixels scaled by 1/255.
Dataset load_idx(const std::filesystem::path& images, const std::filesystem::path& labels, const std::string& name);
// `split` is "train" (60k) or "test" (10k) from `dir` (Debian: /usr/share/datasets/fashion-mnist).
Dataset load_fashion_mnist(const std::filesystem::path& dir, const std::string& split);
// scikit-learn's digits.csv(.gz): 64 pixel values 0–16 and a label per row; pixels scaled by 1/16.
Dataset load_digits(const std::filesystem::path& path);

// Where Debian installs them (install_deps.sh).
std::filesystem::path default_fashion_mnist_dir();
std::filesystem::path default_digits_path();

// The rows `rows` of `d`, in that order.
Dataset subset(const Dataset& d, std::span<const int64_t> rows);
// A seeded random permutation of [0, n) (Fisher–Yates over the stream).
std::vector<int64_t> permutation(int64_t n, runtime::RngStream rng);
// Splits a seeded shuffle of `d` into its first `first` rows and the rest.
std::pair<Dataset, Dataset> split(const Dataset& d, int64_t first, runtime::RngStream rng);
// split(d, n, rng).first, without building the rest.
Dataset sample(const Dataset& d, int64_t n, runtime::RngStream rng);
// Each feature becomes 1 if ≥ threshold, else 0.
void binarize(Dataset& d, float threshold = 0.5f);
// Features of `rows` as a [rows, sample_shape...] f32 tensor, and their labels.
tensor::Tensor batch_features(const Dataset& d, std::span<const int64_t> rows);
std::vector<int32_t> batch_labels(const Dataset& d, std::span<const int64_t> rows);

}  // namespace xp::data
