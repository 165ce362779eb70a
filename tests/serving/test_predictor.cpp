// The predictor's batch features (docs/serving_simulator.md, "Predictor") and the predictor's data
// handling, including the per-iteration overhead it learns from an engine profile's whole forwards.
#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <sstream>

#include "core/dist/thread_group.h"
#include "serving/engine/engine.h"
#include "serving/engine/profiler.h"
#include "serving/sim/predictor.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tiny_llama.h"

namespace xp::serving {
namespace {

const std::filesystem::path kData = std::filesystem::path(EXP_SOURCE_DIR) / "data";

ModelSpec mistral() {
  ModelSpec m;
  m.name = "Mistral-7B-v0.1";
  m.profile_name = "mistralai/Mistral-7B-v0.1";
  m.num_layers = 32;
  m.num_q_heads = 32;
  m.num_kv_heads = 8;
  m.embedding_dim = 4096;
  m.mlp_hidden_dim = 14336;
  return m;
}

DeviceSpec h200() {
  DeviceSpec d;
  d.name = "h200";
  d.profile_dir = "profiles/h200";
  d.network_dir = "vidur/profiling/network/h100_dgx";
  d.fp16_tflops = 989;
  d.memory_gb = 141;
  d.memory_bandwidth_gbps = 4800;
  d.devices_per_node = 8;
  return d;
}

// Vidur's A100 set: its token-level profiles, the historical attention profile, the
// pairwise-NVLink collectives and the CPU-overhead table.
DeviceSpec a100() {
  DeviceSpec d;
  d.name = "a100";
  d.profile_dir = "vidur/profiling/compute/a100";
  d.network_dir = "vidur/profiling/network/a100_pairwise_nvlink";
  d.extra_attention_profiles = {"vidur/historical/acb95f6/profiling/a100/attention.csv"};
  d.cpu_overhead_profiles = {"vidur/historical/acb95f6/profiling/a100/cpu_overheads.csv"};
  d.fp16_tflops = 312;
  d.devices_per_node = 4;
  return d;
}

// A model of Llama-2-70B's attention shape (64 query heads, 8 KV heads, hidden 8192).
ModelSpec wide_gqa(const std::string& name, const std::string& profile_name, int64_t layers, int64_t mlp_hidden) {
  ModelSpec m;
  m.name = name;
  m.profile_name = profile_name;
  m.num_layers = layers;
  m.num_q_heads = 64;
  m.num_kv_heads = 8;
  m.embedding_dim = 8192;
  m.mlp_hidden_dim = mlp_hidden;
  return m;
}

}  // namespace

TEST(BatchFeatures, ReproduceTheWorkedDerivation) {
  BatchShape b;
  b.prefills = {{256, 0}, {128, 512}};
  b.decode_contexts.assign(30, 1000);
  BatchFeatures f = batch_features(b);
  EXPECT_EQ(f.token_ops_tokens, 416);
  EXPECT_EQ(f.kv_save_tokens, 414);
  EXPECT_EQ(f.prefill_kv, 512);
  EXPECT_EQ(f.prefill_chunk, 286);
  EXPECT_EQ(f.decode_batch, 30);
  EXPECT_EQ(f.decode_kv, 1024);
}

TEST(Curve, InterpolatesAndExtrapolatesLinearly) {
  Curve c({1, 2, 4}, {10, 20, 30});
  EXPECT_DOUBLE_EQ(c.at(3), 25);
  EXPECT_DOUBLE_EQ(c.at(6), 40);
  EXPECT_DOUBLE_EQ(c.at(1.5), 15);
  Curve dup({1, 1, 2}, {1, 3, 4});
  EXPECT_DOUBLE_EQ(dup.at(1), 2);  // duplicates averaged
}

TEST(Predictor, MatchesTheProfileAtAProfiledPoint) {
  ReplicaLayout l;
  ExecutionPredictor p(mistral(), h200(), l, kData);
  EXPECT_NE(p.sources().at("attn_prefill").find("profiles/h200"), std::string::npos);
  // One decode at 128 cached tokens: 32 layers × (token ops at 8 tokens + attention).
  BatchShape b;
  b.decode_contexts = {128};
  double t = p.stage_time_s(b, 0);
  EXPECT_GT(t, 32 * 0.0001e-3 * 1000);
  EXPECT_LT(t, 0.02);
  // More work never takes less time.
  BatchShape bigger = b;
  bigger.decode_contexts.assign(64, 2048);
  bigger.prefills = {{512, 0}};
  EXPECT_GT(p.stage_time_s(bigger, 0), t);
}

// Past the profile's longest context (131,072 tokens) attention follows a roofline fitted to the
// profile, anchored at that context: continuous there, linear in the context far beyond it (a
// decode reads its KV; a chunk attends to all of it), and checked against the profile as it loads.
TEST(Predictor, AttentionPastTheLongestProfiledContextFollowsAFittedRooflineCheckedOnLoad) {
  ExecutionPredictor p(mistral(), h200(), ReplicaLayout{}, kData);
  for (const char* op : {"attn_prefill", "attn_decode"}) {
    const LongContextCheck& c = p.long_context_checks().at(op);
    EXPECT_GE(c.points, 5) << op;
    EXPECT_EQ(c.anchor_kv, 65536) << op;
    EXPECT_LT(c.max_error_pct, 5) << op;  // from 64K to 128K tokens, on every profiled batch/chunk
    EXPECT_NE(p.sources().at(std::string(op) + "_long_context").find("beyond kv 131072"), std::string::npos);
  }
  const auto attention_ms = [&](BatchShape b) {
    BatchShape none = b;
    none.decode_contexts.assign(b.decode_contexts.size(), 0);
    for (auto& q : none.prefills) q.context = 0;
    return (p.stage_time_s(b, 0) - p.stage_time_s(none, 0)) * 1e3;
  };
  BatchShape at, past, far, farther;
  at.decode_contexts = {131072};
  past.decode_contexts = {131072 + 64};
  far.decode_contexts = {1'000'000};
  farther.decode_contexts = {10'000'000};
  EXPECT_NEAR(attention_ms(past) / attention_ms(at), 1.0, 0.01);
  EXPECT_NEAR(attention_ms(farther) / attention_ms(far), 10.0, 0.5);
  BatchShape chunk_far, chunk_farther;
  chunk_far.prefills = {{256, 1'000'000}};
  chunk_farther.prefills = {{256, 10'000'000}};
  EXPECT_NEAR(attention_ms(chunk_farther) / attention_ms(chunk_far), 10.0, 0.5);
}

// KV-parallel groups merge each query token's partial attention over the network: a cost per
// layer for the tokens whose KV spans groups, from the collective profile, growing with tokens.
TEST(Predictor, KvParallelMergeCostsCommunicationForTokensSpanningGroups) {
  ReplicaLayout l;
  l.kv_parallel = 4;
  ExecutionPredictor p(mistral(), h200(), l, kData);
  EXPECT_NE(p.sources().at("kvp_merge").find("h100_dgx/all_reduce.csv"), std::string::npos);
  const auto merge_ms_per_layer = [&](BatchShape b) {
    BatchShape local = b;
    local.kvp_merges.clear();
    return (p.stage_time_s(b, 0) - p.stage_time_s(local, 0)) * 1e3 / 32;
  };
  BatchShape decode, chunk;
  decode.decode_contexts = {100000};
  decode.kvp_merges = {{1, 4}};
  chunk.prefills = {{4096, 100000}};
  chunk.kvp_merges = {{4096, 4}};
  EXPECT_GT(merge_ms_per_layer(decode), 0.02);  // at least NCCL's launch
  EXPECT_LT(merge_ms_per_layer(decode), 0.2);   // 8 KiB: latency, not bandwidth
  EXPECT_GT(merge_ms_per_layer(chunk), 5 * merge_ms_per_layer(decode));  // 34 MiB per worker
}

TEST(Predictor, PipelineStagesSplitLayersAndPayForSendRecv) {
  ReplicaLayout l;
  l.tensor_parallel = 2;
  l.pipeline_parallel = 2;
  ExecutionPredictor p(wide_gqa("Llama-2-70B", "meta-llama/Llama-2-70b-hf", 80, 28672), a100(), l, kData);
  EXPECT_EQ(p.layers_per_stage(), 40);
  EXPECT_NE(p.sources().at("attn_decode").find("historical"), std::string::npos);
  EXPECT_NE(p.sources().at("all_reduce").find("a100_pairwise_nvlink"), std::string::npos);
  BatchShape b;
  b.decode_contexts.assign(16, 1000);
  EXPECT_GT(p.stage_time_s(b, 0), p.stage_time_s(b, 1));  // stage 0 also sends to stage 1
}

// A batch alone in the pipeline: every stage as long as its slowest KV-parallel group (a group
// with nothing to run does not count), one stage after the other.
TEST(Predictor, APassIsEveryStageOfItsSlowestKvParallelGroup) {
  ReplicaLayout l;
  l.pipeline_parallel = 2;
  l.kv_parallel = 2;
  ExecutionPredictor p(mistral(), h200(), l, kData);
  BatchShape near, far;
  near.decode_contexts = {1000, 1000};
  far.decode_contexts = {1000, 60000};
  far.kvp_merges = {{1, 2}};
  ASSERT_GT(p.stage_time_s(far, 0), p.stage_time_s(near, 0));
  EXPECT_GT(p.stage_time_s(far, 0), p.stage_time_s(far, 1));  // stage 0 also sends
  const double far_pass = p.stage_time_s(far, 0) + p.stage_time_s(far, 1);
  EXPECT_DOUBLE_EQ(p.pass_time_s({near, far}), far_pass);
  EXPECT_DOUBLE_EQ(p.pass_time_s({far, BatchShape{}}), far_pass);
  EXPECT_DOUBLE_EQ(p.pass_time_s({near}), p.stage_time_s(near, 0) + p.stage_time_s(near, 1));
}

// Vidur's per-iteration CPU overheads, where a table has the model at its TP degree: the sum of
// the medians of scheduling, sampling, input preparation and output processing plus the mean Ray
// time, at the batch size, on every stage (8 sequences: 3.6947 ms in the A100 table); else the
// sources say they are absent, and `cpu_overhead: false` leaves them out as Vidur's default does.
TEST(Predictor, CpuOverheadsComeFromTheTableForTheModelAndTpOnEveryStage) {
  const ModelSpec m = wide_gqa("CodeLlama-34B-Instruct", "codellama/CodeLlama-34b-Instruct-hf", 48, 22016);
  DeviceSpec device = a100();
  ReplicaLayout l;
  l.tensor_parallel = 2;
  l.pipeline_parallel = 2;
  ExecutionPredictor with(m, device, l, kData);
  device.cpu_overhead = false;
  ExecutionPredictor without(m, device, l, kData);
  EXPECT_NE(with.sources().at("cpu_overhead").find("cpu_overheads.csv"), std::string::npos);
  EXPECT_NE(without.sources().at("cpu_overhead").find("off"), std::string::npos);
  BatchShape b;
  b.decode_contexts.assign(8, 1000);
  for (int64_t stage : {0, 1})
    EXPECT_NEAR(with.stage_time_s(b, stage) - without.stage_time_s(b, stage), 3.694692236752948e-3, 1e-9);
  l.tensor_parallel = 4;  // the table has TP2 only
  device.cpu_overhead = true;
  ExecutionPredictor tp4(m, device, l, kData);
  EXPECT_THAT(tp4.sources().at("cpu_overhead"), ::testing::StartsWith("absent"));
}

TEST(Predictor, MissingAttentionProfileFallsBackToAFittedRoofline) {
  ModelSpec m = mistral();
  m.name = "Llama-2-7B";
  m.profile_name = "meta-llama/Llama-2-7b-hf";
  m.num_kv_heads = 32;
  m.mlp_hidden_dim = 11008;
  DeviceSpec h100 = h200();
  h100.name = "h100";
  h100.profile_dir = "vidur/profiling/compute/h100";
  h100.fp16_tflops = 1000;
  h100.memory_bandwidth_gbps = 3350;
  ExecutionPredictor p(m, h100, ReplicaLayout{}, kData);
  EXPECT_NE(p.sources().at("attn_prefill").find("analytic"), std::string::npos);
  BatchShape small, large;
  small.prefills = {{256, 0}};
  large.prefills = {{2048, 2048}};
  EXPECT_GT(p.stage_time_s(large, 0), 2 * p.stage_time_s(small, 0));
}

TEST(Predictor, BadProfilesAreClearErrors) {
  ReplicaLayout tp4;
  tp4.tensor_parallel = 4;
  try {
    ExecutionPredictor(mistral(), h200(), tp4, kData);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("no rows for tensor parallelism 4 (profiled: 1)"), std::string::npos) << e.what();
  }
  testing::TempDir d;
  d.write("profiles/x/m/mlp.csv", "n_head,n_kv_head,n_embd,n_expanded_embd,num_tensor_parallel_workers,num_tokens,"
                                   "time_stats.add.median\n32,8,4096,14336,1,8,0.1\n32,8,4096,14336,1,oops,0.2\n");
  DeviceSpec dev = h200();
  dev.profile_dir = "profiles/x";
  ModelSpec m = mistral();
  m.profile_name = "m";
  try {
    ExecutionPredictor(m, dev, ReplicaLayout{}, d.path());
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("mlp.csv:3: column 'num_tokens': 'oops' is not a number"), std::string::npos)
        << e.what();
  }
  d.write("profiles/x/m/mlp.csv", "n_head,n_kv_head,n_embd,n_expanded_embd,num_tensor_parallel_workers,num_tokens,"
                                   "time_stats.add.median\n32,8,4096,14336,1,8,0.1\n");
  try {
    ExecutionPredictor(m, dev, ReplicaLayout{}, d.path());
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("operator 'input_layernorm' is missing"), std::string::npos) << e.what();
  }
}

TEST(MemoryPlanner, CountsWeightsAndKvPerToken) {
  ModelSpec m = mistral();
  std::string why;
  int64_t blocks = plan_kv_blocks(m, h200(), ReplicaLayout{}, 16, &why);
  // 141 GiB × 0.9 − 13.0 GiB of weights (7.0B params in bf16), 128 KiB of KV per token.
  double params = 2.0 * static_cast<double>(m.layer_params()) * 32;
  double expect = (141.0 * 0.9 * (1 << 30) - params) / (2 * 2 * 128 * 8 * 32) / 16;
  EXPECT_NEAR(static_cast<double>(blocks), expect, 1.0);
  DeviceSpec tiny = h200();
  tiny.memory_gb = 10;
  EXPECT_EQ(plan_kv_blocks(m, tiny, ReplicaLayout{}, 16, &why), 0);
  EXPECT_NE(why.find("less than one 4096-token request"), std::string::npos) << why;
}

}  // namespace xp::serving

namespace xp::serving {
namespace {

// Rewrites every data row of a profile CSV: `edit` gets a column's index by name and the row's
// cells.
using ColumnIndex = std::function<size_t(const std::string&)>;
void rewrite_rows(const std::filesystem::path& file,
                  const std::function<void(const std::vector<std::string>& header, const ColumnIndex& col,
                                           std::vector<std::string>& cells)>& edit) {
  std::ifstream in(file);
  std::string line, out;
  std::getline(in, line);
  out = line + "\n";
  std::vector<std::string> header;
  for (std::stringstream ss(line); std::getline(ss, line, ',');) header.push_back(line);
  const ColumnIndex col = [&](const std::string& name) {
    const auto i = static_cast<size_t>(std::find(header.begin(), header.end(), name) - header.begin());
    if (i == header.size()) throw std::runtime_error(file.string() + " has no column " + name);
    return i;
  };
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    for (std::stringstream ss(line); std::getline(ss, line, ',');) cells.push_back(line);
    edit(header, col, cells);
    for (size_t i = 0; i < cells.size(); ++i) out += cells[i] + (i + 1 < cells.size() ? "," : "\n");
  }
  in.close();
  std::ofstream(file) << out;
}

// The batch an attention.csv row describes.
BatchShape attention_row_shape(const ColumnIndex& col, const std::vector<std::string>& cells) {
  BatchShape b;
  if (cells[col("is_prefill")] == "True")
    b.prefills.push_back({std::stoll(cells[col("prefill_chunk_size")]), std::stoll(cells[col("kv_cache_size")])});
  else b.decode_contexts.assign(std::stoull(cells[col("batch_size")]), std::stoll(cells[col("kv_cache_size")]));
  return b;
}

// Rewrites the `forward` median of every row of an engine profile's attention.csv with
// value(shape of the row); "" leaves the row without a whole-forward time.
void rewrite_forward(const std::filesystem::path& file, const std::function<std::string(const BatchShape&)>& value) {
  rewrite_rows(file, [&](const std::vector<std::string>&, const ColumnIndex& col, std::vector<std::string>& cells) {
    cells[col("time_stats.forward.median")] = value(attention_row_shape(col, cells));
  });
}

// Replaces the measured operator medians of an engine profile by times that grow linearly with
// the tokens and the context, so that tests of fits to them do not depend on how busy the
// machine was while it profiled (one repetition under load can time a one-row decode 20× slow).
void make_operator_times_deterministic(const std::filesystem::path& profile) {
  const auto dir = profile / "cpu" / "engine";
  auto set_medians = [](const std::vector<std::string>& header, std::vector<std::string>& cells, double ms) {
    for (size_t i = 0; i < header.size(); ++i)
      if (header[i].starts_with("time_stats.") && header[i].ends_with(".median") && header[i] != "time_stats.forward.median")
        cells[i] = fmt::format("{:.12g}", ms);
  };
  rewrite_rows(dir / "mlp.csv", [&](const std::vector<std::string>& header, const ColumnIndex& col, std::vector<std::string>& cells) {
    set_medians(header, cells, 0.01 + 0.002 * std::stod(cells[col("num_tokens")]));
  });
  rewrite_rows(dir / "attention.csv", [&](const std::vector<std::string>& header, const ColumnIndex& col, std::vector<std::string>& cells) {
    const BatchShape b = attention_row_shape(col, cells);
    double ms = 0.01;
    for (const auto& p : b.prefills) ms += 1e-5 * static_cast<double>(p.chunk * (p.context + p.chunk));
    for (int64_t kv : b.decode_contexts) ms += 1e-4 * static_cast<double>(kv);
    set_medians(header, cells, ms);
  });
}

std::filesystem::path write_tiny_engine_profile(const testing::TempDir& d, const LlamaConfig& c) {
  write_random_llama(d.path() / "m", c, 1);
  ProfileGrid grid;
  grid.num_tokens = {1, 4, 16, 64, 128};
  grid.prefill_chunks = {16, 64};
  grid.prefill_kv = {0, 64};
  grid.decode_batches = {1, 4};
  grid.decode_kv = {16, 64};
  grid.repetitions = 1;
  write_engine_profile(*LlamaModel::load(d.path() / "m"), grid, d.path() / "profile" / "cpu" / "engine");
  return d.path() / "profile";
}

// A predictor from a tiny model's profile without its whole forwards: the operators alone (at
// deterministic times), nothing fitted yet (scale 1, no overhead).
ExecutionPredictor operators_only_predictor(const testing::TempDir& d) {
  const LlamaConfig c = testing::tiny_llama(256);
  const auto profile = write_tiny_engine_profile(d, c);
  make_operator_times_deterministic(profile);
  rewrite_forward(profile / "cpu" / "engine" / "attention.csv", [](const BatchShape&) { return std::string(); });
  return ExecutionPredictor(engine_model_spec(c), engine_device_spec(), ReplicaLayout{}, profile);
}

// `decodes` decodes over 40 cached tokens and, with `chunk`, a prompt chunk without a prefix.
BatchShape batch_of(int64_t decodes, int64_t chunk = 0) {
  BatchShape b;
  b.decode_contexts.assign(static_cast<size_t>(decodes), 40);
  if (chunk) b.prefills.push_back({chunk, 0});
  return b;
}

}  // namespace

TEST(Predictor, LearnsTheIterationOverheadFromWholeForwards) {
  testing::TempDir d;
  const LlamaConfig c = testing::tiny_llama(256);
  const auto profile = write_tiny_engine_profile(d, c);
  const auto attention = profile / "cpu" / "engine" / "attention.csv";
  auto predictor = [&] {
    return std::make_unique<ExecutionPredictor>(engine_model_spec(c), engine_device_spec(), ReplicaLayout{}, profile);
  };
  // Whole forwards that cost 1.1 × the operators plus 0.5 ms + 0.2 ms a sequence.
  auto whole_ms = [](double operators_ms, const BatchShape& b) {
    return 1.1 * operators_ms + 0.5 + 0.2 * static_cast<double>(b.prefills.size() + b.decode_contexts.size());
  };
  rewrite_forward(attention, [](const BatchShape&) { return std::string(); });
  auto operators = predictor();
  rewrite_forward(attention, [&](const BatchShape& b) {
    return fmt::format("{:.12g}", whole_ms(operators->stage_time_s(b, 0) * 1e3, b));
  });
  auto learned = predictor();
  BatchShape mixed;  // not a profiled shape: a chunk after a prefix, with three decodes
  mixed.prefills.push_back({40, 20});
  mixed.decode_contexts = {30, 50, 70};
  EXPECT_NEAR(learned->stage_time_s(mixed, 0), whole_ms(operators->stage_time_s(mixed, 0) * 1e3, mixed) * 1e-3, 1e-9);
}

TEST(Predictor, OverheadFitReportsTheOperatorsShareOfAnIteration) {
  testing::TempDir d;
  ExecutionPredictor p = operators_only_predictor(d);
  // Iterations that take twice what the operators predict: they account for half of each.
  std::vector<std::pair<BatchShape, double>> iterations;
  for (const BatchShape& b : {batch_of(1), batch_of(3, 32), batch_of(8)})
    iterations.emplace_back(b, 2 * p.stage_time_s(b, 0) * 1e3);
  p.fit_overhead(iterations, "doubled iterations");
  EXPECT_THAT(p.sources().at("iteration_overhead"), ::testing::HasSubstr("account for 0.50–0.50 of an iteration, median 0.50"));
}

TEST(Predictor, IterationsFasterThanTheProfileScaleTheOperatorsDown) {
  // The machine ran 20% faster while serving than while profiling (a shared host's speed
  // drifts): the fit scales the operators by 0.8 instead of needing a negative overhead.
  testing::TempDir d;
  ExecutionPredictor p = operators_only_predictor(d);
  std::vector<std::pair<BatchShape, double>> iterations;
  for (auto [decodes, chunk] : {std::pair{1, 0}, {3, 0}, {8, 0}, {2, 32}, {0, 100}})
    iterations.emplace_back(batch_of(decodes, chunk), 0.8 * p.stage_time_s(batch_of(decodes, chunk), 0) * 1e3);
  const BatchShape unseen = batch_of(5, 60);
  const double before = p.stage_time_s(unseen, 0);
  p.fit_overhead(iterations, "faster iterations");
  EXPECT_NEAR(p.stage_time_s(unseen, 0), 0.8 * before, 1e-9);
}

TEST(Predictor, PromptChunksAndDecodesEachGetTheirOwnScale) {
  // Serving ran the prompt chunks (compute-bound) 20% slower and the decodes (memory-bound) 10%
  // faster than the profile timed their operators, as a shared host's neighbours can: one
  // scale would leave both off.
  testing::TempDir d;
  ExecutionPredictor p = operators_only_predictor(d);
  auto slowdown = [](const BatchShape& b) { return b.prefills.empty() ? 0.9 : 1.2; };
  std::vector<std::pair<BatchShape, double>> iterations;
  for (auto [decodes, chunk] : {std::pair{1, 0}, {3, 0}, {8, 0}, {2, 32}, {0, 100}, {4, 64}}) {
    const BatchShape b = batch_of(decodes, chunk);
    iterations.emplace_back(b, slowdown(b) * p.stage_time_s(b, 0) * 1e3);
  }
  const BatchShape unseen_decodes = batch_of(5), unseen_mixed = batch_of(5, 60);
  const double decodes_before = p.stage_time_s(unseen_decodes, 0), mixed_before = p.stage_time_s(unseen_mixed, 0);
  p.fit_overhead(iterations, "chunks slower, decodes faster");
  EXPECT_NEAR(p.stage_time_s(unseen_decodes, 0), 0.9 * decodes_before, 1e-9);
  EXPECT_NEAR(p.stage_time_s(unseen_mixed, 0), 1.2 * mixed_before, 1e-9);
}

TEST(Predictor, NoisyIterationsAreNotFittedAsLowAsRelativeErrorsWould) {
  // Each batch timed twice, once 30% fast and once 30% slow (a shared host): least squares on
  // relative errors would fit 0.84 of the mean (a slow iteration's error counts less than a fast
  // one's), least squares weighted by 1/√time 0.91, plain least squares 1.0.
  testing::TempDir d;
  ExecutionPredictor p = operators_only_predictor(d);
  std::vector<std::pair<BatchShape, double>> iterations;
  double measured = 0;
  for (int64_t decodes : {1, 2, 4, 8})
    for (double noise : {0.7, 1.3}) {
      iterations.emplace_back(batch_of(decodes), noise * p.stage_time_s(batch_of(decodes), 0) * 1e3);
      measured += iterations.back().second;
    }
  p.fit_overhead(iterations, "noisy iterations");
  double fitted = 0;
  for (const auto& [b, ms] : iterations) fitted += p.stage_time_s(b, 0) * 1e3;
  EXPECT_NEAR(fitted / measured, 0.91, 0.01);
}

TEST(Predictor, FittedOverheadsAreNeverNegativeSoNoBatchTakesNoTime) {
  // Iterations a fixed time (half a one-row decode's operators) shorter than their operators: a
  // negative per-iteration overhead would fit them best, and would make a small enough batch
  // take no time at all.
  testing::TempDir d;
  ExecutionPredictor p = operators_only_predictor(d);
  const BatchShape one = batch_of(1);
  const double one_ms = p.stage_time_s(one, 0) * 1e3;
  std::vector<std::pair<BatchShape, double>> iterations;
  for (int64_t decodes : {1, 2, 4, 8, 16})
    iterations.emplace_back(batch_of(decodes), p.stage_time_s(batch_of(decodes), 0) * 1e3 - 0.5 * one_ms);
  p.fit_overhead(iterations, "shorter iterations");
  EXPECT_THAT(p.sources().at("iteration_overhead"), ::testing::HasSubstr("×) + 0.0000 ms +"));
  // The scale (and a per-sequence cost, which may not be negative either) take the difference.
  EXPECT_GT(p.stage_time_s(one, 0) * 1e3, 0.1 * one_ms);
  EXPECT_LT(p.stage_time_s(one, 0) * 1e3, one_ms);
}

// With several ranks (threads): a tensor-parallel shard's operators profiled at its degree, its
// group's ranks together, and the ranks' all-reduce and stage-to-stage transfer timed in Vidur's
// network layout; a predictor for TP 2 × KVP 2 × 2 stages of the engine takes its collectives there.
TEST(EngineProfile, AShardAndTheRanksCollectivesFeedAModelParallelPredictor) {
  testing::TempDir d;
  const LlamaConfig c = testing::tiny_llama(256);
  write_random_llama(d.path() / "m", c, 1);
  ProfileGrid grid;
  grid.num_tokens = {1, 4, 16};
  grid.prefill_chunks = {16};
  grid.prefill_kv = {0, 64};
  grid.decode_batches = {1, 4};
  grid.decode_kv = {16, 64};
  grid.repetitions = 1;
  const auto profile = d.path() / "profile";
  const RankLayout tp{2, 1, 1};
  dist::run_threads(2, dist::Seconds(30), [&](dist::ProcessGroup& g) {
    const RankGroups groups = split_ranks(g, tp, dist::Seconds(30));
    const auto shard = load_rank_part(d.path() / "m", g.rank(), tp, groups);
    write_engine_profile(*shard, grid, g.rank() == 0 ? profile / "cpu" / "engine" : std::filesystem::path());
  });
  write_network_profile({2, 4}, true, c.hidden_size, 16, 2, profile / "network" / "cpu");
  auto data_rows = [](const std::filesystem::path& f) {
    std::ifstream in(f);
    std::vector<std::string> rows;
    std::string line;
    std::getline(in, line);
    while (std::getline(in, line)) rows.push_back(line);
    return rows;
  };
  const auto mlp = data_rows(profile / "cpu" / "engine" / "mlp.csv");
  ASSERT_FALSE(mlp.empty());
  for (const auto& row : mlp) EXPECT_EQ(row.substr(row.rfind(',')), ",2") << row;  // num_tensor_parallel_workers
  // 1 to 32 rows of the hidden size (twice the largest batch), for 2 and 4 ranks; send/recv for 2.
  EXPECT_EQ(data_rows(profile / "network" / "cpu" / "all_reduce.csv").size(), 12u);
  const auto send_recv = data_rows(profile / "network" / "cpu" / "send_recv.csv");
  ASSERT_EQ(send_recv.size(), 6u);
  EXPECT_NE(send_recv.back().find(fmt::format(",2,{},send_recv,2,2", 32 * c.hidden_size * 4)), std::string::npos)
      << send_recv.back();
  ReplicaLayout l;
  l.tensor_parallel = 2;
  l.pipeline_parallel = 2;
  l.kv_parallel = 2;
  ExecutionPredictor p(engine_model_spec(c), engine_device_spec(8), l, profile);
  for (const char* op : {"all_reduce", "send_recv", "kvp_merge"})
    EXPECT_NE(p.sources().at(op).find("network/cpu"), std::string::npos) << op << ": " << p.sources().at(op);
  BatchShape b = batch_of(4), merged = batch_of(4);
  merged.kvp_merges = {{4, 2}};
  EXPECT_GT(p.stage_time_s(merged, 0), p.stage_time_s(b, 0));  // the merge's all-gather, from the network profile
}

TEST(EngineProfile, TimesBothSidesOfTheMatrixVectorLimit) {
  testing::TempDir d;
  const auto profile = write_tiny_engine_profile(d, testing::tiny_llama(256));  // grid: 1, 4, 16, 64, 128 tokens
  std::ifstream in(profile / "cpu" / "engine" / "mlp.csv");
  std::string line;
  std::getline(in, line);
  std::vector<int64_t> sizes;
  while (std::getline(in, line)) {
    // num_tokens is the second-to-last column.
    const size_t last = line.rfind(','), before = line.rfind(',', last - 1);
    sizes.push_back(std::stoll(line.substr(before + 1, last - before - 1)));
  }
  const int64_t limit = LlamaModel::kMatVecRows;
  EXPECT_EQ(sizes, (std::vector<int64_t>{1, 4, limit, limit + 1, 16, 64, 128}));
}

}  // namespace xp::serving
