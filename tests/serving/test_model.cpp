// A prompt in chunks equals it in one piece (docs/scheduling.md) and the engine issue's
// exactness and bad-input cases on a tiny random Llama (f32; bounds stated per test).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <tuple>

#include "serving/engine/profiler.h"
#include "serving/model/llama.h"
#include "serving/model/safetensors.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tiny_llama.h"

namespace xp::serving {
using tensor::Tensor;
namespace {

LlamaConfig tiny() { return testing::tiny_llama(256); }

std::vector<int32_t> prompt(int n, uint64_t seed) {
  runtime::RngStream r(seed, 0);
  std::vector<int32_t> t;
  for (int i = 0; i < n; ++i) t.push_back(static_cast<int32_t>(r.below(97)));
  return t;
}

std::vector<int32_t> blocks(std::vector<int32_t> ids) { return ids; }

double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, static_cast<double>(std::fabs(a[i] - b[i])));
  return m;
}

class Model : public ::testing::Test {
 protected:
  void SetUp() override {
    write_random_llama(dir_.path(), tiny(), 3);
    model_ = LlamaModel::load(dir_.path());
  }
  // Prefills `toks` in chunks of the given sizes; returns the last chunk's logits.
  std::vector<float> prefill(const std::vector<int32_t>& toks, const std::vector<int64_t>& chunks,
                             const std::vector<int32_t>& table, KvCache& cache) {
    std::vector<float> out;
    int64_t start = 0;
    for (int64_t c : chunks) {
      ForwardItem it{std::span<const int32_t>(toks.data() + start, static_cast<size_t>(c)), start, &table};
      out = model_->forward({it}, cache);
      start += c;
    }
    return out;
  }
  testing::TempDir dir_;
  std::unique_ptr<LlamaModel> model_;
};

}  // namespace

TEST_F(Model, ChunkedPrefillMatchesOneShotWithinOneEMinusFive) {
  auto toks = prompt(45, 1);
  std::vector<int32_t> table = blocks({0, 1, 2, 3});  // block size 16
  KvCache a(tiny(), 8, 16), b(tiny(), 8, 16), c(tiny(), 8, 16);
  auto full = prefill(toks, {45}, table, a);
  auto chunked = prefill(toks, {7, 16, 1, 21}, table, b);  // not aligned to the block size
  auto singles = prefill(toks, std::vector<int64_t>(45, 1), table, c);
  EXPECT_LE(max_abs_diff(full, chunked), 1e-5);
  EXPECT_LE(max_abs_diff(full, singles), 1e-5);
}

TEST_F(Model, PagedCacheMatchesContiguous) {
  auto toks = prompt(40, 2);
  KvCache a(tiny(), 8, 16), b(tiny(), 8, 16);
  auto contiguous = prefill(toks, {20, 20}, blocks({0, 1, 2}), a);
  auto scattered = prefill(toks, {20, 20}, blocks({6, 2, 4}), b);
  EXPECT_EQ(contiguous, scattered);  // same arithmetic, other addresses: bit-identical
}

TEST_F(Model, MixedBatchEqualsRequestsOneByOne) {
  auto p1 = prompt(30, 3), p2 = prompt(12, 4), p3 = prompt(5, 5);
  auto t1 = blocks({0, 1}), t2 = blocks({2}), t3 = blocks({3});
  KvCache solo(tiny(), 8, 16), mixed(tiny(), 8, 16);
  // Request 1 decodes after its prompt; request 2 sends a later chunk; request 3 starts.
  prefill(p1, {30}, t1, solo);
  prefill(p2, {6}, t2, solo);
  int32_t next = 11;
  auto d1 = model_->forward({{std::span<const int32_t>(&next, 1), 30, &t1}}, solo);
  auto c2 = model_->forward({{std::span<const int32_t>(p2.data() + 6, 6), 6, &t2}}, solo);
  auto s3 = model_->forward({{std::span<const int32_t>(p3), 0, &t3}}, solo);

  prefill(p1, {30}, t1, mixed);
  prefill(p2, {6}, t2, mixed);
  auto all = model_->forward({{std::span<const int32_t>(p2.data() + 6, 6), 6, &t2},
                              {std::span<const int32_t>(p3), 0, &t3},
                              {std::span<const int32_t>(&next, 1), 30, &t1}},
                             mixed);
  const size_t V = 97;
  std::vector<float> a(all.begin(), all.begin() + V), b(all.begin() + V, all.begin() + 2 * V),
      c(all.begin() + 2 * V, all.end());
  EXPECT_LE(max_abs_diff(a, c2), 1e-5);
  EXPECT_LE(max_abs_diff(b, s3), 1e-5);
  EXPECT_LE(max_abs_diff(c, d1), 1e-5);
}

TEST_F(Model, GreedyDecodingIsDeterministic) {
  auto run = [&] {
    KvCache cache(tiny(), 8, 16);
    auto table = blocks({0, 1, 2, 3});
    auto toks = prompt(10, 6);
    auto logits = prefill(toks, {10}, table, cache);
    std::vector<int32_t> out;
    runtime::RngStream rng(1, 0);
    for (int i = 0; i < 20; ++i) {
      int32_t t = sample_token(logits, {}, rng);
      out.push_back(t);
      logits = model_->forward({{std::span<const int32_t>(&out.back(), 1), 10 + i, &table}}, cache);
    }
    return out;
  };
  EXPECT_EQ(run(), run());
}

TEST(ModelThreads, ResultsDoNotDependOnTheThreadCount) {
  // Wide enough that every linear layer splits into several column blocks (prefill) and weight-row
  // blocks (decode).
  LlamaConfig c = tiny();
  c.hidden_size = 512;
  c.num_attention_heads = 8;
  c.num_key_value_heads = 4;
  c.intermediate_size = 1280;
  c.vocab_size = 1000;
  testing::TempDir d;
  write_random_llama(d.path(), c, 4);
  auto model = LlamaModel::load(d.path());
  runtime::RngStream r(2, 0);
  std::vector<int32_t> toks;
  for (int i = 0; i < 33; ++i) toks.push_back(static_cast<int32_t>(r.below(1000)));
  std::vector<int32_t> table = {0, 1, 2};
  std::vector<std::vector<float>> runs;
  for (int threads : {1, 2, 3}) {
    set_num_threads(threads);
    KvCache cache(c, 4, 16);
    auto logits = model->forward({{std::span<const int32_t>(toks), 0, &table}}, cache);
    int32_t next = 5;
    auto decode = model->forward({{std::span<const int32_t>(&next, 1), 33, &table}}, cache);
    logits.insert(logits.end(), decode.begin(), decode.end());
    runs.push_back(logits);
  }
  set_num_threads(0);
  EXPECT_EQ(runs[0], runs[1]);  // bit-identical
  EXPECT_EQ(runs[0], runs[2]);
}

TEST_F(Model, BadTokensAndPositionsAreErrorsNamingTheItem) {
  KvCache cache(tiny(), 2, 16);
  auto table = blocks({0});
  int32_t bad = 97;
  try {
    model_->forward({{std::span<const int32_t>(&bad, 1), 0, &table}}, cache);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("token id 97 is outside the vocabulary"), std::string::npos);
  }
  int32_t ok = 3;
  EXPECT_THROW(model_->forward({{std::span<const int32_t>(&ok, 1), 16, &table}}, cache), std::invalid_argument);
  EXPECT_THROW(model_->forward({{std::span<const int32_t>(&ok, 1), 300, &table}}, cache), std::invalid_argument);
}

// The last token's logits of `toks` from scripts/torch_llama_reference.py over the folder `dir`.
std::vector<float> torch_reference_logits(const testing::TempDir& d, const std::filesystem::path& dir,
                                          const std::vector<int32_t>& toks) {
  std::string list;
  for (int32_t t : toks) list += (list.empty() ? "" : ",") + std::to_string(t);
  std::string cmd = "/usr/bin/python3 " + std::string(EXP_SOURCE_DIR) + "/scripts/torch_llama_reference.py " +
                    dir.string() + " " + list + " > " + (d / "ref.json").string() + " 2> " + (d / "err.txt").string();
  EXPECT_EQ(std::system(cmd.c_str()), 0) << d.read("err.txt");
  std::vector<float> theirs;
  for (float v : nlohmann::json::parse(d.read("ref.json"))) theirs.push_back(v);
  return theirs;
}

std::vector<float> our_logits(const std::filesystem::path& dir, const std::vector<int32_t>& toks) {
  auto model = LlamaModel::load(dir);
  KvCache cache(model->config(), 4, 16);
  std::vector<int32_t> table = {0, 1};
  return model->forward({{std::span<const int32_t>(toks), 0, &table}}, cache);
}

TEST(TorchReference, AgreesWithAnIndependentPyTorchForwardPass) {
  // f32 and bf16 checkpoints, Llama-3 RoPE scaling on, GQA; bound 1e-4 on the logits (two
  // float32 implementations with different summation orders).
  for (auto dtype : {tensor::DType::kF32, tensor::DType::kBF16}) {
    testing::TempDir d;
    LlamaConfig c = tiny();
    c.rope_factor = 8.0;
    c.rope_original_max_position = 64;
    write_random_llama(d.path(), c, 11, dtype);
    auto toks = prompt(23, 12);
    auto ours = our_logits(d.path(), toks);
    auto theirs = torch_reference_logits(d, d.path(), toks);
    ASSERT_EQ(theirs.size(), ours.size());
    EXPECT_LE(max_abs_diff(ours, theirs), 1e-4) << tensor::dtype_name(dtype);
  }
}

// transformers 5 writes RoPE settings under rope_parameters (and `dtype` for torch_dtype), and
// large checkpoints come in shards: the same weights in that layout compute the same logits.
TEST(TorchReference, Transformers5RopeParametersAndShardedCheckpointsComputeTheSameLogits) {
  testing::TempDir d;
  LlamaConfig c = tiny();
  c.rope_theta = 500000.0;  // Llama-3's, far from the default, so ignoring it shows
  c.rope_factor = 8.0;
  c.rope_original_max_position = 64;
  write_random_llama(d / "v4", c, 13);
  // The v5 folder: config moved into rope_parameters, weights split over two shards + index.
  nlohmann::json j = nlohmann::json::parse(c.to_json());
  nlohmann::json rope = j["rope_scaling"];
  rope["rope_theta"] = j["rope_theta"];
  j.erase("rope_scaling");
  j.erase("rope_theta");
  j["dtype"] = j["torch_dtype"];
  j.erase("torch_dtype");
  j["rope_parameters"] = rope;
  std::filesystem::create_directories(d / "v5");
  std::ofstream(d / "v5" / "config.json") << j.dump(2);
  auto ckpt = SafetensorsCheckpoint::open(d / "v4");
  std::map<std::string, Tensor> shard[2];
  nlohmann::json index = {{"metadata", nlohmann::json::object()}, {"weight_map", nlohmann::json::object()}};
  size_t i = 0;
  for (const auto& name : ckpt.names()) {
    const size_t s = i++ % 2;
    shard[s][name] = ckpt.load(name);
    index["weight_map"][name] = fmt::format("model-0000{}-of-00002.safetensors", s + 1);
  }
  for (size_t s = 0; s < 2; ++s) write_safetensors(d / "v5" / fmt::format("model-0000{}-of-00002.safetensors", s + 1), shard[s]);
  std::ofstream(d / "v5" / "model.safetensors.index.json") << index.dump(2);

  const LlamaConfig read = LlamaConfig::from_json_file(d / "v5" / "config.json");
  EXPECT_EQ(read.rope_theta, 500000.0);
  EXPECT_EQ(read.rope_factor, 8.0);
  EXPECT_EQ(read.rope_original_max_position, 64);
  auto toks = prompt(23, 14);
  auto v4 = our_logits(d / "v4", toks), v5 = our_logits(d / "v5", toks);
  EXPECT_EQ(v4, v5);  // the same model, bit for bit
  auto theirs = torch_reference_logits(d, d / "v5", toks);
  ASSERT_EQ(theirs.size(), v5.size());
  EXPECT_LE(max_abs_diff(v5, theirs), 1e-4);
}

TEST(Sampling, GreedyTopKAndTopPBehave) {
  std::vector<float> logits = {0.1f, 2.0f, 1.9f, -1.0f};
  runtime::RngStream rng(1, 0);
  EXPECT_EQ(sample_token(logits, {}, rng), 1);
  EXPECT_EQ(sample_token(logits, {1.0, 1, 1.0}, rng), 1);  // top-1 is greedy
  int seen[4] = {0, 0, 0, 0};
  for (int i = 0; i < 2000; ++i) ++seen[sample_token(logits, {1.0, 0, 0.6}, rng)];
  EXPECT_EQ(seen[0] + seen[3], 0);  // outside the nucleus
  EXPECT_GT(seen[1], 0);
  EXPECT_GT(seen[2], 0);
  runtime::RngStream a(9, 4), b(9, 4);
  EXPECT_EQ(sample_token(logits, {0.7, 0, 1.0}, a), sample_token(logits, {0.7, 0, 1.0}, b));
}

TEST(OpTime, SummarizesRepetitionsInAnyOrder) {
  const OpTime t = OpTime::of({4.0, 1.0, 100.0, 2.0, 3.0});  // one burst among five repetitions
  EXPECT_EQ(t.min, 1.0);
  EXPECT_EQ(t.max, 100.0);
  EXPECT_EQ(t.median, 3.0);  // what the predictor reads: the burst does not move it
  EXPECT_DOUBLE_EQ(t.mean, 22.0);
  EXPECT_NEAR(t.std, std::sqrt((18.0 * 18 + 21 * 21 + 78 * 78 + 20 * 20 + 19 * 19) / 5), 1e-12);
}

TEST(Safetensors, RoundTripsAndShards) {
  testing::TempDir d;
  Tensor x = Tensor::from_values({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor y = Tensor::from_values({1.5, -2}, {2}, tensor::DType::kBF16);
  write_safetensors(d / "a.safetensors", {{"x", x}});
  write_safetensors(d / "b.safetensors", {{"y", y}});
  std::ofstream(d / "model.safetensors.index.json")
      << R"({"metadata": {}, "weight_map": {"x": "a.safetensors", "y": "b.safetensors"}})";
  auto c = SafetensorsCheckpoint::open(d.path());
  EXPECT_EQ(c.load("x").to_vector(), x.to_vector());
  EXPECT_EQ(c.load("y").to_vector(), (std::vector<double>{1.5, -2}));
  EXPECT_EQ(c.entry("y").dtype, "BF16");
  EXPECT_THROW(c.entry("z"), std::runtime_error);
}

TEST(Safetensors, CorruptFilesAreErrorsNamingFileAndTensor) {
  testing::TempDir d;
  write_safetensors(d / "m.safetensors", {{"w", Tensor::from_values({1, 2, 3, 4}, {4})}});
  std::filesystem::resize_file(d / "m.safetensors", std::filesystem::file_size(d / "m.safetensors") - 4);
  try {
    SafetensorsCheckpoint::open(d / "m.safetensors");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'w': data ends at byte"), std::string::npos) << e.what();
  }
  std::ofstream(d / "h.safetensors") << std::string("\xff\xff\xff\xff\x00\x00\x00\x00{}", 10);
  EXPECT_THROW(SafetensorsCheckpoint::open(d / "h.safetensors"), std::runtime_error);  // header length
  std::string hdr = R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})";
  uint64_t n = hdr.size();
  std::ofstream f(d / "s.safetensors", std::ios::binary);
  f.write(reinterpret_cast<const char*>(&n), 8);
  f << hdr << std::string(8, '\0');
  f.close();
  try {
    SafetensorsCheckpoint::open(d / "s.safetensors");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("shape [3] of F32 needs 12 bytes, offsets give 8"), std::string::npos) << e.what();
  }
  std::ofstream(d / "model.safetensors.index.json") << R"({"weight_map": {"w": "m2.safetensors", "v": "m2.safetensors"}})";
  write_safetensors(d / "m2.safetensors", {{"w", Tensor::from_values({1}, {1})}});
  try {
    SafetensorsCheckpoint::open(d.path());
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'v' is listed"), std::string::npos) << e.what();
  }
}

// `what` of the runtime_error `f` throws, or "" if it throws none.
template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(Safetensors, MalformedHeaderFieldsAreErrorsNamingFileAndTensor) {
  // Each header describes tensor 'w' in a file with 24 data bytes. The old reader let the JSON
  // library's type errors escape without the file's name, and a shape whose byte size wraps
  // around 2^64 to 0 passed the size check against offsets [0, 0].
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"dtype": 5, "shape": [6], "data_offsets": [0, 24]})", "dtype 5 is not a string"},
      {R"({"dtype": "F64", "shape": [3], "data_offsets": [0, 24]})", "unsupported dtype 'F64'"},
      {R"({"dtype": "F32", "shape": "6", "data_offsets": [0, 24]})", "shape \"6\" is not a list of sizes"},
      {R"({"dtype": "F32", "shape": [-6], "data_offsets": [0, 24]})", "shape [-6] is not a list of non-negative integers"},
      {R"({"dtype": "F32", "shape": [1.5], "data_offsets": [0, 24]})", "is not a list of non-negative integers"},
      {R"({"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]})", "is larger than any file"},
      {R"({"dtype": "F32", "shape": [6], "data_offsets": [0]})", "data_offsets [0] is not [begin, end] in bytes"},
      {R"({"dtype": "F32", "shape": [6], "data_offsets": [-24, 0]})", "is not [begin, end] in bytes"},
      {R"({"dtype": "F32", "shape": [0], "data_offsets": [24, 0]})", "data_offsets [24, 0] end before they begin"},
      {R"({"dtype": "F32", "shape": [6], "data_offsets": [8, 32]})", "data ends at byte 32 of the data section, past its 24 bytes"},
      {R"([1, 2])", "needs dtype, shape and data_offsets"},
  };
  for (const auto& [entry, expected] : cases) {
    const std::string header = R"({"w": )" + entry + "}";
    const std::string what = error_of([&] { parse_safetensors_header(header, 8 + header.size() + 24, "m.safetensors"); });
    EXPECT_EQ(what.rfind("m.safetensors: tensor 'w': ", 0), 0u) << entry << " -> " << what;
    EXPECT_NE(what.find(expected), std::string::npos) << entry << " -> " << what;
  }
  const std::string fine = R"({"__metadata__": {"format": "pt"}, "w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}})";
  auto entries = parse_safetensors_header(fine, 8 + fine.size() + 24, "m.safetensors");
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries["w"].offset, 8 + fine.size());
  EXPECT_EQ(entries["w"].nbytes, 24u);
}

TEST(Safetensors, IndexNamingNoFileOrAMissingShardIsAnErrorNamingIt) {
  testing::TempDir d;
  std::ofstream(d / "model.safetensors.index.json") << R"({"weight_map": {"w": 3}})";
  std::string what = error_of([&] { SafetensorsCheckpoint::open(d.path()); });
  EXPECT_NE(what.find("model.safetensors.index.json: weight_map: tensor 'w' maps to 3, not to a file name"), std::string::npos)
      << what;
  std::ofstream(d / "model.safetensors.index.json") << R"({"weight_map": {"w": "gone.safetensors"}})";
  what = error_of([&] { SafetensorsCheckpoint::open(d.path()); });
  EXPECT_NE(what.find("gone.safetensors: missing or not a regular file"), std::string::npos) << what;
}

TEST(LlamaConfig, FieldsOfTheWrongTypeOrRangeAreErrorsNamingTheField) {
  nlohmann::json good = nlohmann::json::parse(tiny().to_json());
  ASSERT_NO_THROW(LlamaConfig::from_json(good.dump(), "config.json"));
  const std::vector<std::tuple<std::string, nlohmann::json, std::string>> cases = {
      {"/architectures", nlohmann::json::array({5}), "field 'architectures': '[5]' is not supported"},
      {"/hidden_size", "64", "field 'hidden_size': \"64\" is not a positive integer"},
      {"/vocab_size", 0, "field 'vocab_size': 0 is not a positive integer"},
      {"/rms_norm_eps", -1e-5, "field 'rms_norm_eps': -1e-05 is not a positive number"},
      {"/rope_theta", "10000", "field 'rope_theta': \"10000\" is not a positive number"},
      {"/rope_theta", 5e119, "field 'rope_theta': 5e+119 is not a positive number in f32's range"},  // fuzzer
      {"/tie_word_embeddings", "yes", "field 'tie_word_embeddings': is not true or false"},
      {"/head_dim", "16", "field 'head_dim': only head_dim = hidden_size / num_attention_heads"},
      {"/num_attention_heads", 64, "field 'num_attention_heads': head_dim 1 is odd"},
      {"/rope_scaling", "llama3", "field 'rope_scaling': \"llama3\" is not an object"},
      {"/rope_scaling", {{"rope_type", "yarn"}}, "field 'rope_scaling.rope_type': \"yarn\" is not supported"},
      {"/rope_scaling", {{"rope_type", "llama3"}, {"factor", "8"}}, "field 'rope_scaling.factor': \"8\" is not a positive number"},
      {"/rope_scaling", {{"rope_type", "llama3"}, {"factor", 8}, {"low_freq_factor", 4}, {"high_freq_factor", 4}},
       "field 'rope_scaling': high_freq_factor must exceed low_freq_factor"},
  };
  for (const auto& [pointer, value, expected] : cases) {
    nlohmann::json j = good;
    j[nlohmann::json::json_pointer(pointer)] = value;
    const std::string what = error_of([&] { LlamaConfig::from_json(j.dump(), "m/config.json"); });
    EXPECT_EQ(what.rfind("m/config.json: ", 0), 0u) << pointer << " -> " << what;
    EXPECT_NE(what.find(expected), std::string::npos) << pointer << " -> " << what;
  }
  EXPECT_NE(error_of([] { LlamaConfig::from_json("[1]", "m/config.json"); }).find("m/config.json: not a JSON object"),
            std::string::npos);
}

TEST(LlamaConfig, UnsupportedArchitecturesAndShapesAreNamed) {
  testing::TempDir d;
  std::ofstream(d / "config.json") << R"({"architectures": ["GPT2LMHeadModel"], "hidden_size": 64})";
  try {
    LlamaConfig::from_json_file(d / "config.json");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("field 'architectures': 'GPT2LMHeadModel' is not supported"), std::string::npos);
  }
  write_random_llama(d / "m", tiny(), 1);
  LlamaConfig wrong = tiny();
  wrong.intermediate_size = 96;
  std::ofstream(d / "m" / "config.json") << wrong.to_json();
  try {
    LlamaModel::load(d / "m");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("'model.layers.0.mlp.gate_proj.weight' has shape [128, 64], but config.json implies [96, 64]"),
              std::string::npos)
        << e.what();
  }
}

TEST(LlamaConfig, BfloatCheckpointsLoadAndAgreeWithTheirWidenedValues) {
  testing::TempDir d;
  write_random_llama(d / "bf16", tiny(), 5, tensor::DType::kBF16);
  auto m = LlamaModel::load(d / "bf16");
  EXPECT_EQ(m->config().torch_dtype, "bfloat16");
  KvCache cache(tiny(), 2, 16);
  std::vector<int32_t> table = {0}, toks = {1, 2, 3};
  auto logits = m->forward({{std::span<const int32_t>(toks), 0, &table}}, cache);
  EXPECT_EQ(logits.size(), 97u);
  for (float v : logits) EXPECT_TRUE(std::isfinite(v));
}

// A config key that changes the computation and that the engine does not implement is refused
// by name; the reference implements the bias terms, so they are real differences, not noise.
TEST(LlamaConfig, KeysThatChangeTheMathButAreNotImplementedAreErrorsNamingThem) {
  nlohmann::json good = nlohmann::json::parse(tiny().to_json());
  const std::vector<std::tuple<std::string, nlohmann::json, std::string>> cases = {
      {"attention_bias", true, "field 'attention_bias': true is not supported"},
      {"mlp_bias", true, "field 'mlp_bias': true is not supported"},
      {"partial_rotary_factor", 0.5, "field 'partial_rotary_factor': 0.5 is not supported"},
      {"layer_types", {"full_attention", "sliding_attention"}, "field 'layer_types'"},
      {"final_logit_softcapping", 30.0, "field 'final_logit_softcapping'"},
      {"rope_parameters", {{"rope_type", "yarn"}, {"factor", 4}}, "field 'rope_parameters.rope_type': \"yarn\""},
      {"rope_parameters", {{"rope_type", "llama3"}}, "field 'rope_parameters.factor': missing"},
      {"rope_parameters", {{"rope_type", "default"}, {"rope_theta", 20000.0}}, "disagrees with the top-level rope_theta"},
  };
  for (const auto& [key, value, expected] : cases) {
    nlohmann::json j = good;
    j[key] = value;
    const std::string what = error_of([&] { LlamaConfig::from_json(j.dump(), "m/config.json"); });
    EXPECT_NE(what.find(expected), std::string::npos) << key << " -> " << what;
  }
  // Their neutral values load, and a sliding window limits the context it is exact for.
  nlohmann::json neutral = good;
  neutral["attention_bias"] = false;
  neutral["mlp_bias"] = false;
  neutral["layer_types"] = {"full_attention", "full_attention"};
  neutral["sliding_window"] = 128;
  EXPECT_EQ(LlamaConfig::from_json(neutral.dump(), "m/config.json").max_position_embeddings, 128);
  neutral["use_sliding_window"] = false;
  EXPECT_EQ(LlamaConfig::from_json(neutral.dump(), "m/config.json").max_position_embeddings, 256);
}

}  // namespace xp::serving
