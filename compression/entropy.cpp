#include "compression/entropy.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <map>
#include <queue>
#include <unordered_map>

namespace xp::compression {

namespace {

constexpr int kMaxCodeLength = 30;
constexpr int kLutBits = 11;  // codes up to this long decode with one table lookup

class BitWriter {
 public:
  void put(uint32_t code, int length) {  // most significant bit first, length ≤ 30
    acc_ = (acc_ << length) | code;
    bits_ += length;
    if (bits_ >= 32) {  // flush whole 32-bit words: one store instead of four byte appends
      bits_ -= 32;
      const uint32_t word = __builtin_bswap32(static_cast<uint32_t>(acc_ >> bits_));
      const size_t at = bytes_.size();
      bytes_.resize(at + 4);
      std::memcpy(bytes_.data() + at, &word, 4);
    }
  }
  std::vector<uint8_t>& finish() {
    while (bits_ >= 8) {
      bits_ -= 8;
      bytes_.push_back(static_cast<uint8_t>(acc_ >> bits_));
    }
    if (bits_ > 0) bytes_.push_back(static_cast<uint8_t>(acc_ << (8 - bits_)));
    bits_ = 0;
    return bytes_;
  }
  void reserve(size_t bytes) { bytes_.reserve(bytes); }

 private:
  std::vector<uint8_t> bytes_;
  uint64_t acc_ = 0;  // only the low `bits_` bits are pending (< 32 between calls)
  int bits_ = 0;
};

class BitReader {
 public:
  explicit BitReader(const std::vector<uint8_t>& b) : b_(b) {}
  // The next n ≤ 32 bits without consuming them (zeros past the end).
  uint32_t peek(int n) {
    if (bits_ < n) refill();
    return static_cast<uint32_t>((acc_ >> (bits_ - n)) & ((uint64_t{1} << n) - 1));
  }
  void skip(int n) { bits_ -= n; }
  // Bits consumed so far.
  uint64_t consumed() const { return pos_ * 8 - static_cast<uint64_t>(bits_); }

 private:
  void refill() {  // to 57..64 buffered bits, so most symbols need no refill
    while (bits_ <= 56) {
      acc_ = (acc_ << 8) | (pos_ < b_.size() ? b_[pos_] : 0u);
      ++pos_;
      bits_ += 8;
    }
  }
  const std::vector<uint8_t>& b_;
  size_t pos_ = 0;
  uint64_t acc_ = 0;
  int bits_ = 0;
};

struct Canonical {
  std::vector<int32_t> symbols;  // sorted by (length, symbol)
  std::vector<uint8_t> lengths;
  std::vector<uint32_t> codes;
};

Canonical canonical(std::vector<std::pair<int32_t, uint8_t>> table) {
  std::sort(table.begin(), table.end(), [](auto a, auto b) { return a.second != b.second ? a.second < b.second : a.first < b.first; });
  Canonical c;
  uint32_t code = 0;
  uint8_t prev = table.empty() ? 0 : table.front().second;
  for (size_t i = 0; i < table.size(); ++i) {
    if (i > 0) code = (code + 1) << (table[i].second - prev);
    prev = table[i].second;
    c.symbols.push_back(table[i].first);
    c.lengths.push_back(table[i].second);
    c.codes.push_back(code);
  }
  return c;
}

// Symbol → dense index: a flat table for values in (−2^16, 2^16) (every RLE value and the
// common run lengths), a hash map beyond.
class SymbolIndex {
 public:
  static constexpr int32_t kHalf = 1 << 16;
  SymbolIndex() : dense_(2 * kHalf, -1) {}
  int32_t& operator[](int32_t v) { return v > -kHalf && v < kHalf ? dense_[static_cast<size_t>(v + kHalf)] : sparse(v); }

 private:
  int32_t& sparse(int32_t v) { return sparse_.try_emplace(v, -1).first->second; }
  std::vector<int32_t> dense_;
  std::unordered_map<int32_t, int32_t> sparse_;
};

}  // namespace

std::vector<uint8_t> huffman_code_lengths(std::span<const uint64_t> frequencies) {
  const size_t n = frequencies.size();
  std::vector<uint8_t> lengths(n, 0);
  if (n == 1) lengths[0] = 1;
  if (n <= 1) return lengths;
  std::vector<uint64_t> f(frequencies.begin(), frequencies.end());
  for (;;) {
    // Heap of (weight, node); nodes < n are leaves, the rest internal with parent links.
    using Item = std::pair<uint64_t, size_t>;
    std::priority_queue<Item, std::vector<Item>, std::greater<>> heap;
    std::vector<size_t> parent(2 * n, SIZE_MAX);
    for (size_t i = 0; i < n; ++i) heap.emplace(std::max<uint64_t>(f[i], 1), i);
    size_t next = n;
    while (heap.size() > 1) {
      auto [wa, a] = heap.top();
      heap.pop();
      auto [wb, b] = heap.top();
      heap.pop();
      parent[a] = parent[b] = next;
      heap.emplace(wa + wb, next++);
    }
    int longest = 0;
    for (size_t i = 0; i < n; ++i) {
      int depth = 0;
      for (size_t p = parent[i]; p != SIZE_MAX; p = parent[p]) ++depth;
      lengths[i] = static_cast<uint8_t>(depth);
      longest = std::max(longest, depth);
    }
    if (longest <= kMaxCodeLength) return lengths;
    for (auto& v : f) v = (v + 1) / 2;  // flatten the distribution and rebuild (as zlib does)
  }
}

namespace {

// Run lengths above kExactRuns are coded as a class — the bit width of L − kExactRuns — then the
// bits below its leading one, raw (DEFLATE's length codes): run lengths are near uniform inside a
// class, so little is lost, and a table holds a few classes instead of every length that occurs.
// Small tables matter: the rearranged layout writes one per group, and late checkpoints are a
// few kilobytes.
constexpr int32_t kExactRuns = 8;
constexpr int kMaxRunClass = 31;  // runs are < 2^31

struct RunClass {
  int32_t symbol;
  uint32_t extra;
  int extra_bits;
};

RunClass run_class(int32_t run) {  // run > kExactRuns
  const auto over = static_cast<uint32_t>(run - kExactRuns);
  const int k = std::bit_width(over);
  return {kExactRuns + k, over - (1u << (k - 1)), k - 1};
}

// A table entry is one varint: the zigzagged symbol above five bits of code length.
uint64_t table_entry(int32_t symbol, uint8_t length) {
  const uint32_t zigzag = (static_cast<uint32_t>(symbol) << 1) ^ static_cast<uint32_t>(symbol >> 31);
  return (uint64_t{zigzag} << 5) | length;
}

std::pair<int32_t, uint8_t> from_table_entry(uint64_t e) {
  const uint64_t zigzag = e >> 5;
  if (zigzag > UINT32_MAX) throw jobs::CheckpointError("huffman: code table symbol out of range (corrupt)");
  const auto z = static_cast<uint32_t>(zigzag);
  return {static_cast<int32_t>((z >> 1) ^ (0u - (z & 1u))), static_cast<uint8_t>(e & 31)};
}

size_t varint_size(uint64_t v) { return static_cast<size_t>(std::bit_width(v | 1) + 6) / 7; }

}  // namespace

TokenCode::TokenCode(std::span<const int32_t> stream, bool runs)
    : runs_(runs), ranks_(stream.size()), tokens_(stream.size()) {
  SymbolIndex index;
  for (size_t t = 0; t < stream.size(); ++t) {
    const int32_t v = stream[t];
    int32_t symbol = v;
    if (runs && v > kExactRuns) {
      const RunClass r = run_class(v);
      symbol = r.symbol;
      raw_bits_ += static_cast<uint64_t>(r.extra_bits);
    }
    int32_t& i = index[symbol];
    if (i < 0) {
      i = static_cast<int32_t>(symbols_.size());
      symbols_.push_back(symbol);
      counts_.push_back(0);
    }
    ++counts_[static_cast<size_t>(i)];
    ranks_[t] = static_cast<uint32_t>(i);
  }
  lengths_ = huffman_code_lengths(counts_);
}

uint64_t TokenCode::payload_bits() const {
  uint64_t bits = raw_bits_;
  for (size_t i = 0; i < symbols_.size(); ++i) bits += counts_[i] * lengths_[i];
  return bits;
}

size_t TokenCode::size() const {
  const uint64_t bytes = (payload_bits() + 7) / 8;
  size_t n = varint_size(symbols_.size()) + varint_size(tokens_) + varint_size(bytes) + bytes;
  for (size_t i = 0; i < symbols_.size(); ++i) n += varint_size(table_entry(symbols_[i], lengths_[i]));
  return n;
}

size_t TokenCode::joint_size(std::span<const TokenCode> codes) {
  std::map<int32_t, uint64_t> counts;
  TokenCode joint;
  for (const TokenCode& c : codes) {
    for (size_t i = 0; i < c.symbols_.size(); ++i) counts[c.symbols_[i]] += c.counts_[i];
    joint.tokens_ += c.tokens_;
    joint.raw_bits_ += c.raw_bits_;
  }
  for (const auto& [symbol, count] : counts) {
    joint.symbols_.push_back(symbol);
    joint.counts_.push_back(count);
  }
  joint.lengths_ = huffman_code_lengths(joint.counts_);
  return joint.size();
}

void TokenCode::write(std::span<const int32_t> stream, jobs::ByteWriter& out) const {
  if (stream.size() != ranks_.size()) throw std::invalid_argument("TokenCode::write: not the stream the code was built from");
  std::vector<std::pair<int32_t, uint8_t>> table;
  for (size_t i = 0; i < symbols_.size(); ++i) table.emplace_back(symbols_[i], lengths_[i]);
  Canonical c = canonical(table);
  // Each token's code through its symbol's rank of first appearance, recorded by the histogram.
  std::unordered_map<int32_t, size_t> canonical_rank;
  for (size_t k = 0; k < c.symbols.size(); ++k) canonical_rank[c.symbols[k]] = k;
  std::vector<uint32_t> code_of(symbols_.size());
  std::vector<uint8_t> length_of(symbols_.size());
  for (size_t i = 0; i < symbols_.size(); ++i) {
    const size_t k = canonical_rank.at(symbols_[i]);
    code_of[i] = c.codes[k];
    length_of[i] = c.lengths[k];
  }
  out.put_varint(c.symbols.size());
  for (size_t k = 0; k < c.symbols.size(); ++k) out.put_varint(table_entry(c.symbols[k], c.lengths[k]));
  BitWriter writer;
  writer.reserve(payload_bits() / 8 + 8);
  for (size_t t = 0; t < stream.size(); ++t) {
    const uint32_t i = ranks_[t];
    writer.put(code_of[i], length_of[i]);
    if (runs_ && stream[t] > kExactRuns) {
      const RunClass r = run_class(stream[t]);
      if (r.extra_bits) writer.put(r.extra, r.extra_bits);
    }
  }
  out.put_varint(stream.size());
  out.put_blob(writer.finish());
}

void huffman_encode(std::span<const int32_t> stream, jobs::ByteWriter& out) {
  TokenCode(stream, /*runs=*/false).write(stream, out);
}

void huffman_encode_runs(std::span<const int32_t> rle_tokens, jobs::ByteWriter& out) {
  TokenCode(rle_tokens, /*runs=*/true).write(rle_tokens, out);
}

namespace {

// The values of an RLE token stream (sign trick): a value token (≤ 0, negated), then its run
// length when the next token is positive; a non-positive next token is the next value, held
// back for the next round. `next()` yields the `tokens` tokens in order (a span or a decoder).
template <class Next>
void expand_runs(uint64_t tokens, Next&& next, std::span<uint16_t> out) {
  const size_t expected_count = out.size();
  size_t filled = 0;
  bool held = false;
  int32_t held_token = 0;
  auto more = [&] { return held || tokens > 0; };
  auto take = [&] {
    if (held) {
      held = false;
      return held_token;
    }
    --tokens;
    return next();
  };
  while (more()) {
    const int32_t value = take();
    uint64_t run = 1;
    if (more()) {
      const int32_t token = take();
      if (token > 0) {
        run = static_cast<uint64_t>(token);
      } else {
        held = true;
        held_token = token;
      }
    }
    if (value > 0 || value < -65535) throw jobs::CheckpointError("rle: a run length without a value (corrupt)");
    if (run > expected_count - filled) throw jobs::CheckpointError("rle: more values than the tensor holds (corrupt)");
    const auto v = static_cast<uint16_t>(-value);
    if (run == 1) out[filled] = v;  // the common case; fill_n's setup costs more than the store
    else std::fill_n(out.data() + filled, run, v);
    filled += run;
  }
  if (filled != expected_count)
    throw jobs::CheckpointError(fmt::format("rle: decoded {} values, the tensor holds {} (corrupt)", filled, expected_count));
}

// Reads a Huffman-coded stream's table, count and bits (checking that the table is a prefix code
// and the bits can hold the count) and decodes one value per next().
class HuffmanDecoder {
 public:
  // `runs`: the stream is RLE tokens whose run-length classes are followed by raw bits.
  HuffmanDecoder(jobs::ByteReader& in, bool runs) {
    const auto n = in.get_varint();
    if (n > in.remaining()) throw jobs::CheckpointError("huffman: code table larger than the payload (corrupt)");
    std::vector<std::pair<int32_t, uint8_t>> table(n);
    for (auto& entry : table) {
      entry = from_table_entry(in.get_varint());
      if (entry.second == 0 || entry.second > kMaxCodeLength)
        throw jobs::CheckpointError(fmt::format("huffman: invalid code length {}", entry.second));
    }
    c_ = canonical(table);
    count_ = in.get_varint();
    bytes_ = in.get_blob();
    if (count_ > 0 && n == 0) throw jobs::CheckpointError("huffman: symbols but no code table (corrupt)");
    if (count_ > bytes_.size() * 8) throw jobs::CheckpointError("huffman: more symbols than bits (corrupt)");
    double kraft = 0;
    for (uint8_t l : c_.lengths) kraft += std::ldexp(1.0, -l);
    if (kraft > 1.0 + 1e-12) throw jobs::CheckpointError("huffman: code lengths do not form a prefix code (corrupt)");
    // Short codes: one lookup of the next kLutBits bits gives the value and the code length. A
    // run-length class whose raw bits fit too gets an entry per raw value holding the run itself.
    for (size_t k = 0; k < c_.symbols.size(); ++k) {
      const int32_t symbol = c_.symbols[k];
      const int length = c_.lengths[k];
      const int raw = runs && symbol > kExactRuns ? symbol - kExactRuns - 1 : 0;
      if (raw >= kMaxRunClass) throw jobs::CheckpointError("rle: run-length class out of range (corrupt)");
      if (length > kLutBits) continue;
      auto fill = [&](uint32_t prefix, int bits, Entry entry) {
        const int shift = kLutBits - bits;
        for (uint32_t e = prefix << shift; e < (prefix + 1) << shift; ++e) lut_[e] = entry;
      };
      if (raw && length + raw <= kLutBits) {
        for (uint32_t x = 0; x < (1u << raw); ++x)
          fill((c_.codes[k] << raw) | x, length + raw, {kExactRuns + static_cast<int32_t>((1u << raw) + x), static_cast<uint8_t>(length + raw), 0});
      } else {
        fill(c_.codes[k], length, {symbol, static_cast<uint8_t>(length), static_cast<uint8_t>(raw)});
      }
    }
    // Long codes: canonical decoding, per length the first code and the rank of its first symbol.
    for (uint8_t l : c_.lengths) ++per_length_[l];
    uint32_t code = 0, rank = 0;
    for (size_t l = 1; l <= kMaxCodeLength; ++l) {
      code = (code + per_length_[l - 1]) << 1;
      first_code_[l] = code;
      first_index_[l] = rank;
      rank += per_length_[l];
    }
    total_bits_ = bytes_.size() * 8;
  }
  uint64_t count() const { return count_; }
  [[gnu::always_inline]] int32_t next() {
    const Entry e = lut_[bits_.peek(kLutBits)];
    int32_t value;
    if (e.length) {
      bits_.skip(e.length);
      value = e.value;
    } else {
      value = next_long();
    }
    if (bits_.consumed() > total_bits_) [[unlikely]]
      ended_early();
    return value;
  }
  // An RLE token: a value (≤ 0) or a run length; a class the table could not expand is followed
  // by its raw bits.
  [[gnu::always_inline]] int32_t next_run_token() {
    const Entry e = lut_[bits_.peek(kLutBits)];
    int32_t value;
    int raw;
    if (e.length) {
      bits_.skip(e.length);
      value = e.value;
      raw = e.raw;
    } else {
      value = next_long();
      raw = value > kExactRuns ? value - kExactRuns - 1 : 0;
    }
    if (raw) [[unlikely]] {
      value = kExactRuns + static_cast<int32_t>((1u << raw) + bits_.peek(raw));
      bits_.skip(raw);
    }
    if (bits_.consumed() > total_bits_) [[unlikely]]
      ended_early();
    return value;
  }

 private:
  [[noreturn, gnu::cold, gnu::noinline]] static void ended_early() {
    throw jobs::CheckpointError("huffman: bit stream ends early (corrupt)");
  }
  int32_t next_long() {
    for (size_t l = kLutBits + 1; l <= kMaxCodeLength; ++l) {
      const uint32_t v = bits_.peek(static_cast<int>(l));
      const uint32_t offset = v - first_code_[l];
      if (v >= first_code_[l] && offset < per_length_[l]) {
        bits_.skip(static_cast<int>(l));
        return c_.symbols[first_index_[l] + offset];
      }
    }
    throw jobs::CheckpointError("huffman: invalid bit stream (corrupt)");
  }
  struct Entry {
    int32_t value = 0;
    uint8_t length = 0;  // 0: a longer code
    uint8_t raw = 0;     // raw bits that follow (a run-length class not expanded in the table)
  };
  Canonical c_;
  uint64_t count_ = 0, total_bits_ = 0;
  std::vector<uint8_t> bytes_;
  BitReader bits_{bytes_};
  std::vector<Entry> lut_ = std::vector<Entry>(size_t{1} << kLutBits);
  std::array<uint32_t, kMaxCodeLength + 2> first_code_{}, first_index_{}, per_length_{};
};

}  // namespace

std::vector<int32_t> huffman_decode(jobs::ByteReader& in) {
  HuffmanDecoder d(in, /*runs=*/false);
  std::vector<int32_t> out(d.count());
  for (int32_t& v : out) v = d.next();
  return out;
}

std::vector<uint16_t> huffman_decode_runs(jobs::ByteReader& in, size_t expected_count) {
  HuffmanDecoder d(in, /*runs=*/true);
  std::vector<uint16_t> out(expected_count);
  expand_runs(d.count(), [&] { return d.next_run_token(); }, std::span<uint16_t>(out));
  return out;
}

std::vector<uint8_t> pack_bits(std::span<const uint32_t> values, std::span<const uint8_t> widths) {
  if (values.size() != widths.size()) throw std::invalid_argument("pack_bits: one width per value");
  BitWriter bits;
  for (size_t i = 0; i < values.size(); ++i) {
    const int w = widths[i];
    if (w > 32) throw std::invalid_argument("pack_bits: width above 32");
    const uint32_t v = w == 32 ? values[i] : values[i] & ((1u << w) - 1);
    if (w > 16) {  // BitWriter::put takes at most 30 bits
      bits.put(v >> 16, w - 16);
      bits.put(v & 0xFFFFu, 16);
    } else if (w > 0) {
      bits.put(v, w);
    }
  }
  return bits.finish();
}

std::vector<uint32_t> unpack_bits(const std::vector<uint8_t>& bytes, std::span<const uint8_t> widths) {
  uint64_t needed = 0;
  for (uint8_t w : widths) needed += w;
  if (needed > bytes.size() * 8) throw jobs::CheckpointError("raw bits: fewer bits than the values need (corrupt)");
  BitReader bits(bytes);
  std::vector<uint32_t> out(widths.size());
  for (size_t i = 0; i < widths.size(); ++i) {
    const int w = widths[i];
    if (w == 0) continue;
    const uint32_t v = bits.peek(w);
    bits.skip(w);
    out[i] = v;
  }
  return out;
}

std::vector<int32_t> rle_encode(std::span<const uint16_t> values) {
  std::vector<int32_t> out;
  out.reserve(values.size() / 2 + 16);
  for (size_t i = 0; i < values.size();) {
    size_t j = i + 1;
    while (j < values.size() && values[j] == values[i]) ++j;
    out.push_back(-static_cast<int32_t>(values[i]));
    if (j - i > 1) {
      // Runs longer than INT32_MAX are split (never in practice; keeps the stream well formed).
      uint64_t run = j - i;
      while (run > 0) {
        const auto piece = static_cast<int32_t>(std::min<uint64_t>(run, INT32_MAX));
        if (piece > 1) out.push_back(piece);
        run -= static_cast<uint64_t>(piece);
        if (run > 0) out.push_back(-static_cast<int32_t>(values[i]));
      }
    }
    i = j;
  }
  return out;
}

std::vector<uint16_t> rle_decode(std::span<const int32_t> stream, size_t expected_count) {
  size_t next = 0;
  std::vector<uint16_t> out(expected_count);
  expand_runs(stream.size(), [&] { return stream[next++]; }, std::span<uint16_t>(out));
  return out;
}

}  // namespace xp::compression
