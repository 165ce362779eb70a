// Dataset readers: real Fashion-MNIST and digits files from Debian, and every malformed-input
// error on small fixture files this test writes itself.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <fstream>
#include <numeric>

#include "core/data/dataset.h"
#include "tests/support/temp_dir.h"

namespace xp::data {
namespace {

using ::testing::HasSubstr;

std::vector<uint8_t> idx(uint32_t magic, std::vector<uint32_t> dims, size_t payload_bytes) {
  std::vector<uint8_t> b;
  auto put = [&b](uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(v >> s));
  };
  put(magic);
  for (uint32_t d : dims) put(d);
  for (size_t i = 0; i < payload_bytes; ++i) b.push_back(static_cast<uint8_t>(i % 10));
  return b;
}

void write(const std::filesystem::path& p, const std::vector<uint8_t>& bytes, bool gzip) {
  if (gzip) {
    gzFile f = gzopen(p.c_str(), "wb");
    gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(f);
  } else {
    std::ofstream(p, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
}

std::string load_error(const std::filesystem::path& images, const std::filesystem::path& labels) {
  try {
    load_idx(images, labels, "fixture");
  } catch (const DatasetError& e) {
    return e.what();
  }
  return "no error";
}

TEST(IdxTest, ReadsGzippedAndPlainFiles) {
  xp::testing::TempDir dir;
  write(dir.path() / "img.gz", idx(0x803, {3, 2, 2}, 12), true);
  write(dir.path() / "lab", idx(0x801, {3}, 3), false);
  Dataset d = load_idx(dir.path() / "img.gz", dir.path() / "lab", "fixture");
  EXPECT_EQ(d.size(), 3);
  EXPECT_EQ(d.sample_shape, (tensor::Shape{1, 2, 2}));
  EXPECT_FLOAT_EQ(d.features[1], 1.0f / 255.0f);
  EXPECT_EQ(d.labels, (std::vector<int32_t>{0, 1, 2}));
}

// A gzip file records only its last member's size (the reader sizes its buffer by it): two members
// read whole all the same.
TEST(IdxTest, GzipFilesOfSeveralMembersReadWhole) {
  xp::testing::TempDir dir;
  const auto bytes = idx(0x803, {3, 2, 2}, 12);
  write(dir.path() / "a.gz", {bytes.begin(), bytes.begin() + 20}, true);
  write(dir.path() / "b.gz", {bytes.begin() + 20, bytes.end()}, true);
  std::ofstream joined(dir.path() / "img.gz", std::ios::binary);
  joined << std::ifstream(dir.path() / "a.gz", std::ios::binary).rdbuf() << std::ifstream(dir.path() / "b.gz", std::ios::binary).rdbuf();
  joined.close();
  write(dir.path() / "lab", idx(0x801, {3}, 3), false);
  Dataset d = load_idx(dir.path() / "img.gz", dir.path() / "lab", "fixture");
  ASSERT_EQ(d.features.size(), 12u);
  EXPECT_FLOAT_EQ(d.features[11], 1.0f / 255.0f);  // the payload's bytes are i % 10
}

TEST(IdxTest, WrongMagicNamesTheFile) {
  xp::testing::TempDir dir;
  write(dir.path() / "img", idx(0x801, {3}, 3), false);
  write(dir.path() / "lab", idx(0x801, {3}, 3), false);
  std::string e = load_error(dir.path() / "img", dir.path() / "lab");
  EXPECT_THAT(e, HasSubstr("img"));
  EXPECT_THAT(e, HasSubstr("magic"));
}

TEST(IdxTest, TruncatedDataIsReported) {
  xp::testing::TempDir dir;
  write(dir.path() / "img", idx(0x803, {3, 2, 2}, 10), false);
  write(dir.path() / "lab", idx(0x801, {3}, 3), false);
  EXPECT_THAT(load_error(dir.path() / "img", dir.path() / "lab"), HasSubstr("truncated"));
}

TEST(IdxTest, TruncatedGzipStreamIsReported) {
  xp::testing::TempDir dir;
  write(dir.path() / "img.gz", idx(0x803, {50, 8, 8}, 3200), true);
  auto size = std::filesystem::file_size(dir.path() / "img.gz");
  std::filesystem::resize_file(dir.path() / "img.gz", size / 2);
  write(dir.path() / "lab", idx(0x801, {50}, 50), false);
  EXPECT_THAT(load_error(dir.path() / "img.gz", dir.path() / "lab"), HasSubstr("img.gz"));
}

TEST(IdxTest, MismatchedCountsNameBothFiles) {
  xp::testing::TempDir dir;
  write(dir.path() / "img", idx(0x803, {3, 2, 2}, 12), false);
  write(dir.path() / "lab", idx(0x801, {4}, 4), false);
  std::string e = load_error(dir.path() / "img", dir.path() / "lab");
  EXPECT_THAT(e, HasSubstr("3 images"));
  EXPECT_THAT(e, HasSubstr("4 labels"));
}

TEST(IdxTest, MissingFileSaysHowToInstallIt) {
  xp::testing::TempDir dir;
  EXPECT_THAT(load_error(dir.path() / "nope", dir.path() / "lab"), HasSubstr("install_deps"));
}

TEST(FashionMnistTest, DebianFilesLoadWithTheirKnownSizes) {
  Dataset test = load_fashion_mnist(default_fashion_mnist_dir(), "test");
  EXPECT_EQ(test.size(), 10000);
  EXPECT_EQ(test.sample_shape, (tensor::Shape{1, 28, 28}));
  EXPECT_EQ(test.num_classes, 10);
  EXPECT_EQ(test.labels[0], 9);  // the first test image is an ankle boot
}

TEST(DigitsTest, LoadsAllRowsScaledToUnitInterval) {
  Dataset d = load_digits(default_digits_path());
  EXPECT_EQ(d.size(), 1797);
  EXPECT_EQ(d.sample_size(), 64);
  EXPECT_EQ(*std::max_element(d.features.begin(), d.features.end()), 1.0f);
  EXPECT_EQ(d.labels[0], 0);
}

TEST(DigitsTest, BadCellNamesFileAndLine) {
  xp::testing::TempDir dir;
  std::ofstream(dir.path() / "bad.csv") << "1,2,x\n";
  try {
    load_digits(dir.path() / "bad.csv");
    FAIL();
  } catch (const DatasetError& e) {
    EXPECT_THAT(std::string(e.what()), HasSubstr("bad.csv:1"));
  }
}

TEST(SplitTest, IsADeterministicPartition) {
  Dataset d = load_digits(default_digits_path());
  auto [a, b] = split(d, 1000, runtime::RngStream(1, 2));
  auto [a2, b2] = split(d, 1000, runtime::RngStream(1, 2));
  EXPECT_EQ(a.size(), 1000);
  EXPECT_EQ(b.size(), 797);
  EXPECT_EQ(a.labels, a2.labels);
  EXPECT_EQ(a.features, a2.features);
  auto sum = [](const Dataset& x) { return std::accumulate(x.features.begin(), x.features.end(), 0.0); };
  EXPECT_NEAR(sum(a) + sum(b), sum(d), 1e-3 * sum(d));
}

TEST(SplitTest, SampleIsTheSplitsFirstPartWithoutTheRest) {
  Dataset d = load_digits(default_digits_path());
  Dataset s = sample(d, 300, runtime::RngStream(3, 2));
  Dataset first = split(d, 300, runtime::RngStream(3, 2)).first;
  EXPECT_EQ(s.size(), 300);
  EXPECT_EQ(s.labels, first.labels);
  EXPECT_EQ(s.features, first.features);
  EXPECT_THROW(sample(d, d.size() + 1, runtime::RngStream(3, 2)), DatasetError);
}

TEST(BinarizeTest, ThresholdsAtOneHalf) {
  Dataset d;
  d.sample_shape = {3};
  d.features = {0.2f, 0.5f, 0.9f};
  d.labels = {0};
  binarize(d);
  EXPECT_EQ(d.features, (std::vector<float>{0, 1, 1}));
}

}  // namespace
}  // namespace xp::data
