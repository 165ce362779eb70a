// DynaQuant's building blocks (docs/dynaquant.md): the log-bucket histogram's
// quantile error and merge, exact rank selection, k-means levels, canonical Huffman and RLE round trips, the
// exact-float codec (every bit pattern round trips; a value equal to its reference costs about a bit), and the
// delta layouts — exact round trips when the alphabet grows or shrinks, and the rearranged layout
// beating plain RLE when migration rates differ between buckets.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "compression/delta_codec.h"
#include "compression/entropy.h"
#include "compression/float_codec.h"
#include "compression/kmeans.h"
#include "compression/log_histogram.h"
#include "compression/quantizer.h"
#include "compression/rank_select.h"
#include "core/runtime/rng.h"

namespace xp::compression {
namespace {

std::vector<float> normal_values(size_t n, uint64_t stream, double std = 0.05) {
  runtime::RngStream rng(11, stream);
  std::vector<float> v(n);
  for (auto& x : v) x = static_cast<float>(std * rng.normal());
  return v;
}

TEST(LogHistogramTest, QuantilesAreWithinRelativeErrorAlpha) {
  auto v = normal_values(20000, 1);
  LogHistogram h(0.01);
  h.add(v);
  std::sort(v.begin(), v.end());
  for (double q : {0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99}) {
    const double exact = v[static_cast<size_t>(std::ceil(q * static_cast<double>(v.size()))) - 1];
    EXPECT_LE(std::fabs(h.quantile(q) - exact), 0.01 * std::fabs(exact) + 1e-12) << q;
  }
}

TEST(LogHistogramTest, BlockAndSingleValueAddsGiveTheSameBuckets) {
  auto v = normal_values(5000, 4);
  // Zeros, signs, tiny and huge magnitudes, and values either side of bucket boundaries.
  v.insert(v.end(), {0.0f, -0.0f, 1e-13f, 1e-30f, -3e38f, 3e38f, 1.0f, -1.0f, 1.0202f, 0.9801f});
  LogHistogram block(0.01), single(0.01);
  block.add(v);
  for (float x : v) single.add(x);
  const auto a = block.buckets(), b = single.buckets();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].centre, b[i].centre) << i;
    EXPECT_EQ(a[i].count, b[i].count) << i;
  }
}

TEST(RankSelectTest, MatchesASortAtEveryRankAskedIncludingTies) {
  auto v = normal_values(30000, 9);
  for (auto& x : v) x = std::fabs(x);
  v.insert(v.end(), 500, 0.0f);                 // a run of zeros
  v.insert(v.end(), 300, std::fabs(v[17]));     // ties inside a populated bucket
  std::vector<float> sorted = v;
  std::sort(sorted.begin(), sorted.end());
  const std::vector<uint64_t> ranks{1, 2, 250, 501, 502, 15000, 15000, v.size() - 1, v.size()};
  RankSelect s;
  for (float x : v) s.count(x);
  s.want(ranks);
  for (float x : v) s.collect(x);
  EXPECT_EQ(s.size(), v.size());
  for (size_t i = 0; i < ranks.size(); ++i) EXPECT_EQ(s.value(i), sorted[ranks[i] - 1]) << "rank " << ranks[i];
}

TEST(RankSelectTest, RefusesARankOutsideTheCountedValues) {
  RankSelect s;
  for (float x : {0.5f, 0.25f}) s.count(x);
  EXPECT_THROW(s.want({0}), std::out_of_range);
  EXPECT_THROW(s.want({3}), std::out_of_range);
}

TEST(LogHistogramTest, MergeEqualsOneHistogramOfEverything) {
  auto a = normal_values(1000, 2), b = normal_values(1000, 3);
  LogHistogram ha, hb, all;
  ha.add(a);
  hb.add(b);
  all.add(a);
  all.add(b);
  ha.merge(hb);
  ASSERT_EQ(ha.buckets().size(), all.buckets().size());
  for (size_t i = 0; i < all.buckets().size(); ++i) {
    EXPECT_EQ(ha.buckets()[i].count, all.buckets()[i].count);
    EXPECT_EQ(ha.buckets()[i].centre, all.buckets()[i].centre);
  }
  EXPECT_THROW(ha.merge(LogHistogram(0.02)), std::invalid_argument);
}

TEST(LogHistogramTest, ZerosHaveTheirOwnBucket) {
  LogHistogram h;
  std::vector<float> v{0.0f, 0.0f, 1e-13f, -1.0f, 1.0f};
  h.add(v);
  auto b = h.buckets();
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[1].centre, 0.0);
  EXPECT_EQ(b[1].count, 3u);
  EXPECT_LT(b[0].centre, 0.0);
}

TEST(KMeansTest, LevelsAreSortedDeterministicAndBeatUniformLevels) {
  auto v = normal_values(50000, 4);
  LogHistogram h;
  h.add(v);
  KMeansOptions o{.bins = 8, .seed = 3};
  auto levels = kmeans_levels(h, o);
  ASSERT_EQ(levels.size(), 8u);
  EXPECT_TRUE(std::is_sorted(levels.begin(), levels.end()));
  EXPECT_EQ(levels, kmeans_levels(h, o));
  // Mean squared quantization error against 8 uniform levels over the same range.
  const float lo = *std::min_element(v.begin(), v.end()), hi = *std::max_element(v.begin(), v.end());
  std::vector<float> uniform(8);
  for (int i = 0; i < 8; ++i) uniform[static_cast<size_t>(i)] = lo + (hi - lo) * (static_cast<float>(i) + 0.5f) / 8.0f;
  auto mse = [&](const std::vector<float>& c) {
    double s = 0;
    for (float x : v) {
      const double d = x - c[static_cast<size_t>(nearest_level(c, x))];
      s += d * d;
    }
    return s / static_cast<double>(v.size());
  };
  EXPECT_LT(mse(levels), mse(uniform));
}

TEST(KMeansTest, WellSeparatedClustersGetExactKMeansAssignments) {
  // Four tight clusters far apart: exact k-means puts each in its own centre, so every value's
  // nearest level must be its cluster's.
  const std::vector<float> centres{-1.0f, -0.3f, 0.4f, 1.2f};
  runtime::RngStream rng(12, 1);
  std::vector<float> v;
  std::vector<size_t> cluster;
  for (size_t i = 0; i < 8000; ++i) {
    const size_t c = i % centres.size();
    v.push_back(centres[c] * static_cast<float>(1.0 + 0.01 * rng.normal()));
    cluster.push_back(c);
  }
  LogHistogram h;
  h.add(v);
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const auto levels = kmeans_levels(h, {.bins = 4, .seed = seed});
    ASSERT_EQ(levels.size(), 4u);
    for (size_t i = 0; i < v.size(); ++i) ASSERT_EQ(static_cast<size_t>(nearest_level(levels, v[i])), cluster[i]) << "seed " << seed;
  }
}

TEST(KMeansTest, NearestLevelMatchesBruteForce) {
  std::vector<float> c{-1.0f, -0.2f, 0.0f, 0.5f, 2.0f};
  runtime::RngStream rng(1, 5);
  for (int i = 0; i < 1000; ++i) {
    const auto x = static_cast<float>(rng.uniform() * 5 - 2.5);
    size_t best = 0;
    for (size_t j = 1; j < c.size(); ++j)
      if (std::fabs(x - c[j]) < std::fabs(x - c[best])) best = j;
    EXPECT_EQ(static_cast<size_t>(nearest_level(c, x)), best) << x;
  }
}

std::vector<int32_t> huffman_round_trip(const std::vector<int32_t>& s, size_t* bytes = nullptr) {
  jobs::ByteWriter out;
  huffman_encode(s, out);
  if (bytes) *bytes = out.bytes().size();
  jobs::ByteReader in(out.bytes());
  auto back = huffman_decode(in);
  EXPECT_TRUE(in.at_end());
  return back;
}

TEST(HuffmanTest, RoundTripsEmptySingleAndSkewedStreams) {
  EXPECT_TRUE(huffman_round_trip({}).empty());
  EXPECT_EQ(huffman_round_trip({7, 7, 7}), (std::vector<int32_t>{7, 7, 7}));
  runtime::RngStream rng(2, 1);
  std::vector<int32_t> s(100000);
  for (auto& v : s) v = rng.uniform() < 0.9 ? 0 : -static_cast<int32_t>(rng.below(20));
  size_t bytes = 0;
  EXPECT_EQ(huffman_round_trip(s, &bytes), s);
  EXPECT_LT(bytes, s.size() / 4);  // ~0.9 of the symbols cost one bit
}

TEST(HuffmanTest, CodeLengthsStayWithinThirtyBits) {
  std::vector<uint64_t> fib{1, 1};
  while (fib.size() < 45) fib.push_back(fib[fib.size() - 1] + fib[fib.size() - 2]);  // depth 44 unlimited
  auto lengths = huffman_code_lengths(fib);
  EXPECT_LE(*std::max_element(lengths.begin(), lengths.end()), 30);
  double kraft = 0;
  for (uint8_t l : lengths) kraft += std::ldexp(1.0, -l);
  EXPECT_LE(kraft, 1.0 + 1e-12);
}

TEST(RleTest, SignTrickWritesRunsLongerThanOneAfterTheNegatedValue) {
  std::vector<uint16_t> v{3, 3, 3, 0, 5, 1, 1};
  EXPECT_EQ(rle_encode(v), (std::vector<int32_t>{-3, 3, 0, -5, -1, 2}));
  EXPECT_EQ(rle_decode(rle_encode(v), v.size()), v);
  EXPECT_THROW(rle_decode(std::vector<int32_t>{-3, 3}, 2), jobs::CheckpointError);
}

TEST(RleTest, FusedHuffmanRleDecodeMatchesTheTwoStages) {
  auto coded = [](const std::vector<int32_t>& tokens) {
    jobs::ByteWriter w;
    huffman_encode_runs(tokens, w);
    return w.take();
  };
  runtime::RngStream rng(13, 1);
  std::vector<std::vector<uint16_t>> cases{{7}, {7, 7}, {1, 2}, {0, 0, 0, 4}, {4, 0, 0, 0}, {}};
  std::vector<uint16_t> random(5000);
  for (auto& x : random) x = static_cast<uint16_t>(rng.uniform() < 0.7 ? 0 : rng.below(9));  // long and short runs
  cases.push_back(random);
  for (size_t run : {8, 9, 10, 17, 1000, (1 << 20) + 3}) {  // around and far past the exact run lengths
    std::vector<uint16_t> v(run, 5);
    v.push_back(2);
    cases.push_back(v);
  }
  for (const auto& v : cases) {
    const auto bytes = coded(rle_encode(v));
    jobs::ByteReader in(bytes);
    EXPECT_EQ(huffman_decode_runs(in, v.size()), v);
    EXPECT_TRUE(in.at_end());
  }
  // A run length first, too many or too few values: refused like the two stages refuse them.
  for (auto [tokens, count] : {std::pair{std::vector<int32_t>{3, -1}, size_t{4}}, std::pair{std::vector<int32_t>{-1, 5}, size_t{4}},
                               std::pair{std::vector<int32_t>{-1, -2}, size_t{3}}}) {
    const auto bytes = coded(tokens);
    jobs::ByteReader in(bytes);
    EXPECT_THROW(huffman_decode_runs(in, count), jobs::CheckpointError);
  }
}

TEST(RleTest, TheSizeWithoutCodingIsTheSizeCoded) {
  runtime::RngStream rng(13, 2);
  std::vector<TokenCode> codes;
  std::vector<int32_t> all;
  for (double zeros : {1.0, 0.99, 0.7, 0.0}) {
    std::vector<uint16_t> v(30000);
    for (auto& x : v) x = static_cast<uint16_t>(rng.uniform() < zeros ? 0 : rng.below(300));
    const auto tokens = rle_encode(v);
    jobs::ByteWriter w;
    huffman_encode_runs(tokens, w);
    codes.emplace_back(tokens, /*runs=*/true);
    EXPECT_EQ(codes.back().size(), w.bytes().size()) << zeros;
    all.insert(all.end(), tokens.begin(), tokens.end());
  }
  // One code for the four streams back to back, from their histograms alone.
  EXPECT_EQ(TokenCode::joint_size(codes), TokenCode(all, /*runs=*/true).size());
}

TEST(RleTest, AConstantStreamCostsAFewBytes) {
  // One value repeated: a two-entry table, a count and a few bits. Late checkpoints are mostly
  // such streams (one per group in the rearranged layout), so their framing is the ratio.
  std::vector<uint16_t> zeros(100000, 0);
  jobs::ByteWriter w;
  huffman_encode_runs(rle_encode(zeros), w);
  EXPECT_LE(w.bytes().size(), 10u);
  jobs::ByteReader in(w.bytes());
  EXPECT_EQ(huffman_decode_runs(in, zeros.size()), zeros);
}

TEST(BitPackingTest, RoundTripsWidthsZeroToThirtyTwoAndRefusesTooFewBits) {
  std::vector<uint32_t> values;
  std::vector<uint8_t> widths;
  runtime::RngStream rng(17, 1);
  for (int w = 0; w <= 32; ++w) {
    const uint64_t v = rng.next_u64();
    values.push_back(static_cast<uint32_t>(w == 32 ? v : v & ((uint64_t{1} << w) - 1)));
    widths.push_back(static_cast<uint8_t>(w));
  }
  const auto bytes = pack_bits(values, widths);
  EXPECT_EQ(bytes.size(), (33u * 32u / 2u + 7u) / 8u);  // Σ w = 528 bits
  EXPECT_EQ(unpack_bits(bytes, widths), values);
  widths.push_back(8);
  EXPECT_THROW(unpack_bits(bytes, widths), jobs::CheckpointError);
}

std::vector<uint32_t> floats_round_trip(const std::vector<uint32_t>& bits, const std::vector<int64_t>& reference,
                                        FloatFormat format, size_t* size = nullptr) {
  jobs::ByteWriter w;
  encode_floats(bits, reference, format, w);
  if (size) *size = w.bytes().size();
  jobs::ByteReader in(w.bytes());
  auto back = decode_floats(in, reference, format);
  EXPECT_TRUE(in.at_end());
  return back;
}

TEST(FloatCodecTest, EveryBitPatternRoundTripsWithAndWithoutAReference) {
  // Every bf16 pattern (±0, subnormals, ±inf, NaNs), against no reference and against the
  // patterns farthest away (the difference spans the whole format).
  std::vector<uint32_t> bf16(65536);
  std::iota(bf16.begin(), bf16.end(), 0u);
  std::vector<int64_t> none(bf16.size(), kNoReference), far(bf16.size());
  for (size_t i = 0; i < far.size(); ++i) far[i] = i % 2 ? 0x7FFF : 0xFFFF;
  EXPECT_EQ(floats_round_trip(bf16, none, FloatFormat::kBf16), bf16);
  EXPECT_EQ(floats_round_trip(bf16, far, FloatFormat::kBf16), bf16);
  // f32: the extremes and random patterns, each against a random reference or none.
  runtime::RngStream rng(17, 2);
  std::vector<uint32_t> f32{0u, 0x80000000u, 0x7FFFFFFFu, 0xFFFFFFFFu, 0x7F800000u, 0x00000001u, 0x80000001u};
  while (f32.size() < 5000) f32.push_back(static_cast<uint32_t>(rng.next_u64()));
  std::vector<int64_t> ref(f32.size());
  for (size_t i = 0; i < ref.size(); ++i) ref[i] = i % 3 == 0 ? kNoReference : static_cast<int64_t>(static_cast<uint32_t>(rng.next_u64()));
  ref[1] = 0x7FFFFFFF;  // −0 against the largest positive pattern: the widest difference
  EXPECT_EQ(floats_round_trip(f32, ref, FloatFormat::kF32), f32);
}

TEST(FloatCodecTest, ValuesHeldByTheReferenceCostAboutABitAndSmallDriftsAFew) {
  // Protected weights right after a restore equal the parent's; later they drift a few ulps.
  const auto w = normal_values(2000, 9, 0.3);
  std::vector<uint32_t> bits(w.size());
  std::vector<int64_t> same(w.size()), none(w.size(), kNoReference);
  for (size_t i = 0; i < w.size(); ++i) {
    bits[i] = to_bf16(w[i]);
    same[i] = bits[i];
  }
  size_t held = 0, unreferenced = 0, drifted = 0;
  EXPECT_EQ(floats_round_trip(bits, same, FloatFormat::kBf16, &held), bits);
  EXPECT_EQ(floats_round_trip(bits, none, FloatFormat::kBf16, &unreferenced), bits);
  std::vector<int64_t> near(same);
  runtime::RngStream rng(17, 3);
  for (auto& r : near) r += static_cast<int64_t>(rng.below(7)) - 3;  // within 3 ulps, same sign
  EXPECT_EQ(floats_round_trip(bits, near, FloatFormat::kBf16, &drifted), bits);
  EXPECT_LE(held, w.size() / 8 + 16);             // one bit each and the framing
  EXPECT_LT(drifted, w.size() * 5 / 8);           // under five bits each
  EXPECT_LT(unreferenced, w.size() * 2 * 13 / 16);  // sign and exponent coded: under 13 of 16 bits
}

TEST(FloatCodecTest, ACorruptStreamIsRefused) {
  std::vector<uint32_t> bits{0x3F80, 0x4000, 0xBF80};
  std::vector<int64_t> ref{kNoReference, 0x3F80, kNoReference};
  jobs::ByteWriter w;
  encode_floats(bits, ref, FloatFormat::kBf16, w);
  {
    jobs::ByteReader in(w.bytes());
    EXPECT_THROW(decode_floats(in, std::vector<int64_t>{kNoReference, 0x3F80}, FloatFormat::kBf16), jobs::CheckpointError);
  }
  {
    // A referenced value read as unreferenced: its symbol (a bit width) is not a sign and exponent.
    jobs::ByteReader in(w.bytes());
    EXPECT_THROW(decode_floats(in, std::vector<int64_t>(3, kNoReference), FloatFormat::kBf16), jobs::CheckpointError);
  }
  {
    auto truncated = w.bytes();
    truncated.pop_back();
    jobs::ByteReader in(truncated);
    EXPECT_THROW(decode_floats(in, ref, FloatFormat::kBf16), jobs::CheckpointError);
  }
}

// prev and cur symbols over a K-level alphabet: most keep their bucket; each bucket migrates at
// its own rate (0% .. 60%).
std::pair<std::vector<uint16_t>, std::vector<uint16_t>> drifting(size_t n, int b) {
  runtime::RngStream rng(5, 5);
  std::vector<uint16_t> prev(n), cur(n);
  for (size_t i = 0; i < n; ++i) {
    prev[i] = static_cast<uint16_t>(rng.below(static_cast<uint64_t>(b)));
    const double rate = 0.6 * prev[i] / (b - 1);
    cur[i] = rng.uniform() < rate ? static_cast<uint16_t>((prev[i] + 1) % b) : prev[i];
  }
  return {prev, cur};
}

TEST(DeltaCodecTest, EveryLayoutRoundTripsWhenTheAlphabetGrowsOrShrinks) {
  for (auto [bp, bc] : {std::pair{10, 10}, std::pair{6, 10}, std::pair{10, 6}}) {
    runtime::RngStream rng(7, static_cast<uint64_t>(bp * 100 + bc));
    std::vector<uint16_t> prev(5000), cur(5000);
    for (auto& p : prev) p = static_cast<uint16_t>(rng.below(static_cast<uint64_t>(bp)));
    for (size_t i = 0; i < cur.size(); ++i)
      cur[i] = rng.uniform() < 0.8 ? static_cast<uint16_t>(std::min<int>(prev[i], bc - 1))
                                   : static_cast<uint16_t>(rng.below(static_cast<uint64_t>(bc)));
    for (auto layout : {DeltaLayout::kHuffmanOnly, DeltaLayout::kRleHuffman, DeltaLayout::kRearranged}) {
      jobs::ByteWriter out;
      encode_delta(prev, cur, bp, bc, layout, out);
      jobs::ByteReader in(out.bytes());
      EXPECT_EQ(decode_delta(prev, bp, in), cur) << bp << "->" << bc << " layout " << static_cast<int>(layout);
      EXPECT_TRUE(in.at_end());
    }
  }
}

TEST(DeltaCodecTest, RearrangedBeatsPlainRleWhenMigrationDiffersByBucket) {
  auto [prev, cur] = drifting(200000, 10);
  auto size = [&, &p = prev, &c = cur](DeltaLayout layout) {
    jobs::ByteWriter out;
    encode_delta(p, c, 10, 10, layout, out);
    return out.bytes().size();
  };
  const size_t huffman = size(DeltaLayout::kHuffmanOnly), rle = size(DeltaLayout::kRleHuffman),
               rearranged = size(DeltaLayout::kRearranged);
  RecordProperty("huffman_only_bytes", std::to_string(huffman));
  RecordProperty("rle_bytes", std::to_string(rle));
  RecordProperty("rearranged_bytes", std::to_string(rearranged));
  EXPECT_LT(rearranged, rle);
}

TEST(DeltaCodecTest, RearrangedCodesAFewMovesNoLargerThanPlainRle) {
  // Right after a restore only a few symbols move, from a few buckets (here the top two): one
  // code for all groups, whose runs of zeros join across the still buckets (per-group tables
  // would be most of the bytes).
  runtime::RngStream rng(5, 6);
  std::vector<uint16_t> prev(200000), cur;
  for (auto& p : prev) p = static_cast<uint16_t>(rng.below(10));
  cur = prev;
  for (int moved = 0; moved < 40;) {
    const size_t i = rng.below(prev.size());
    if (prev[i] >= 8 && cur[i] == prev[i]) {
      cur[i] = static_cast<uint16_t>(prev[i] - 1);
      ++moved;
    }
  }
  // And a drifting pair, where each bucket gets its own code (bucket 0 does not move).
  auto [drift_prev, drift_cur] = drifting(200000, 10);
  for (const auto& [p, c] : {std::pair{prev, cur}, std::pair{drift_prev, drift_cur}}) {
    jobs::ByteWriter rle, rearranged;
    encode_delta(p, c, 10, 10, DeltaLayout::kRleHuffman, rle);
    encode_delta(p, c, 10, 10, DeltaLayout::kRearranged, rearranged);
    EXPECT_LE(rearranged.bytes().size(), rle.bytes().size());
    jobs::ByteReader in(rearranged.bytes());
    EXPECT_EQ(decode_delta(p, 10, in), c);
    EXPECT_TRUE(in.at_end());
  }
}

TEST(DeltaCodecTest, ShortGroupsRoundTripWhetherOrNotTheyMoved) {
  // Groups of one and two symbols: all zero deltas, a zero then a move, a move then a zero.
  const std::vector<std::pair<std::vector<uint16_t>, std::vector<uint16_t>>> cases{
      {{0, 0}, {0, 1}}, {{0, 0}, {1, 0}}, {{0, 0}, {0, 0}}, {{0, 1, 1}, {0, 1, 2}}, {{2}, {0}}};
  for (const auto& [prev, cur] : cases) {
    jobs::ByteWriter w;
    encode_delta(prev, cur, 3, 3, DeltaLayout::kRearranged, w);
    jobs::ByteReader in(w.bytes());
    EXPECT_EQ(decode_delta(prev, 3, in), cur);
    EXPECT_TRUE(in.at_end());
  }
}

TEST(DeltaCodecTest, BaseSymbolsRoundTrip) {
  auto [prev, cur] = drifting(10000, 12);
  jobs::ByteWriter out;
  encode_base(cur, out);
  jobs::ByteReader in(out.bytes());
  EXPECT_EQ(decode_base(in, cur.size()), cur);
}

TEST(DeltaCodecTest, TruncatedStreamOrWrongParentIsRefused) {
  auto [prev, cur] = drifting(10000, 8);
  jobs::ByteWriter out;
  encode_delta(prev, cur, 8, 8, DeltaLayout::kRearranged, out);
  auto bytes = out.bytes();
  std::vector<std::byte> half(bytes.begin(), bytes.begin() + static_cast<long>(bytes.size() / 2));
  jobs::ByteReader truncated(half);
  EXPECT_THROW(decode_delta(prev, 8, truncated), jobs::CheckpointError);
  std::vector<uint16_t> other_parent(prev.begin(), prev.end() - 1);
  jobs::ByteReader in(bytes);
  EXPECT_THROW(decode_delta(other_parent, 8, in), jobs::CheckpointError);
}

}  // namespace
}  // namespace xp::compression
