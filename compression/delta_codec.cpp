#include "compression/delta_codec.h"

#include <fmt/format.h>

#include <algorithm>

#include "compression/entropy.h"

namespace xp::compression {

namespace {

// The rearranged layout's two codes (encode_delta says when each wins).
constexpr uint8_t kCodePerGroup = 0, kSharedCode = 1;

void encode_rle_huffman(std::span<const uint16_t> values, jobs::ByteWriter& out) {
  huffman_encode_runs(rle_encode(values), out);
}

std::vector<uint16_t> decode_rle_huffman(jobs::ByteReader& in, size_t count) {
  return huffman_decode_runs(in, count);
}

// Appends an RLE token stream to another, joining the run that ends one and the run of the same
// value that starts the other (as if the two sequences had been coded as one).
void append_runs(std::vector<int32_t>& all, const std::vector<int32_t>& next) {
  size_t from = 0;
  if (!all.empty() && !next.empty()) {
    const bool tail_run = all.back() > 0;
    const int32_t tail_value = tail_run ? all[all.size() - 2] : all.back();
    const int64_t tail_length = tail_run ? all.back() : 1;
    const bool head_run = next.size() > 1 && next[1] > 0;
    const int64_t joined = tail_length + (head_run ? next[1] : 1);
    if (next[0] == tail_value && joined <= INT32_MAX) {
      if (tail_run) all.back() = static_cast<int32_t>(joined);
      else all.push_back(static_cast<int32_t>(joined));
      from = head_run ? 2 : 1;
    }
  }
  all.insert(all.end(), next.begin() + static_cast<std::ptrdiff_t>(from), next.end());
}

}  // namespace

void encode_base(std::span<const uint16_t> symbols, jobs::ByteWriter& out) { encode_rle_huffman(symbols, out); }

std::vector<uint16_t> decode_base(jobs::ByteReader& in, size_t count) { return decode_rle_huffman(in, count); }

void encode_delta(std::span<const uint16_t> prev, std::span<const uint16_t> cur, int b_prev, int b_cur,
                  DeltaLayout layout, jobs::ByteWriter& out) {
  if (prev.size() != cur.size())
    throw std::invalid_argument(fmt::format("encode_delta: {} previous symbols for {} current", prev.size(), cur.size()));
  const int b_star = std::max(b_prev, b_cur);
  size_t outside = 0;
  for (size_t i = 0; i < cur.size(); ++i) outside += (prev[i] >= b_prev) | (cur[i] >= b_cur);
  if (outside) throw std::invalid_argument("encode_delta: symbol outside its alphabet");
  // (cur − prev) mod B* without a division: both are < B*, so one conditional add suffices.
  auto delta = [&](size_t i) {
    const int diff = cur[i] - prev[i];
    return static_cast<uint16_t>(diff < 0 ? diff + b_star : diff);
  };
  out.put<uint16_t>(static_cast<uint16_t>(b_star));
  out.put<uint8_t>(static_cast<uint8_t>(layout));
  switch (layout) {
    case DeltaLayout::kHuffmanOnly: {
      std::vector<int32_t> stream(cur.size());
      for (size_t i = 0; i < cur.size(); ++i) stream[i] = delta(i);
      huffman_encode(stream, out);
      break;
    }
    case DeltaLayout::kRleHuffman: {
      std::vector<uint16_t> d(cur.size());
      for (size_t i = 0; i < cur.size(); ++i) d[i] = delta(i);
      encode_rle_huffman(d, out);
      break;
    }
    case DeltaLayout::kRearranged: {
      // A counting sort by the previous symbol (stable: parameter order inside a group).
      std::vector<size_t> start(static_cast<size_t>(b_prev) + 1, 0);
      for (uint16_t p : prev) ++start[p + 1u];
      for (size_t g = 1; g < start.size(); ++g) start[g] += start[g - 1];
      std::vector<uint16_t> grouped(cur.size());
      std::vector<size_t> next(start.begin(), start.end() - 1);
      for (size_t i = 0; i < cur.size(); ++i) grouped[next[prev[i]]++] = delta(i);
      // Two codes for the groups; the smaller is written, after a byte saying which:
      //   per group  each non-empty group its own RLE + Huffman code, or one byte when all its D
      //              are 0 — wins when groups migrate at very different rates and hold enough
      //              symbols to pay for their tables;
      //   shared     one code over the grouped sequence (runs continue across groups) — wins
      //              when few symbols move (right after a restore), where per-group tables would
      //              be most of the bytes.
      // The decoder knows each group's size from the parent's symbols: none is stored.
      std::vector<std::vector<int32_t>> group_tokens;
      std::vector<TokenCode> group_codes;
      std::vector<bool> unchanged;
      size_t per_group_bytes = 0;
      for (size_t g = 0; g + 1 < start.size(); ++g) {
        const auto group = std::span<const uint16_t>(grouped).subspan(start[g], start[g + 1] - start[g]);
        if (group.empty()) continue;
        group_tokens.push_back(rle_encode(group));
        group_codes.emplace_back(group_tokens.back(), /*runs=*/true);
        // All zeros: one run of 0 (a single value, or the value and its length).
        const auto& t = group_tokens.back();
        unchanged.push_back(t[0] == 0 && (t.size() == 1 || (t.size() == 2 && t[1] > 0)));
        per_group_bytes += 1 + (unchanged.back() ? 0 : group_codes.back().size());
      }
      // The shared code's size is estimated from the groups' histograms (its runs of zeros that
      // join across groups only make it smaller).
      const bool shared = TokenCode::joint_size(group_codes) < per_group_bytes;
      out.put<uint8_t>(shared ? kSharedCode : kCodePerGroup);
      if (shared) {
        std::vector<int32_t> all_tokens;
        for (const auto& tokens : group_tokens) append_runs(all_tokens, tokens);
        huffman_encode_runs(all_tokens, out);
        break;
      }
      for (size_t k = 0; k < group_tokens.size(); ++k) {
        out.put<uint8_t>(unchanged[k] ? 0 : 1);
        if (!unchanged[k]) group_codes[k].write(group_tokens[k], out);
      }
      break;
    }
  }
}

std::vector<uint16_t> decode_delta(std::span<const uint16_t> prev, int b_prev, jobs::ByteReader& in) {
  const int b_star = in.get<uint16_t>();
  const auto layout = in.get<uint8_t>();
  if (b_star < b_prev || b_star == 0)
    throw jobs::CheckpointError(fmt::format("delta: alphabet {} smaller than its parent's {} (corrupt)", b_star, b_prev));
  // Symbols per previous symbol; the last slot counts parent symbols outside the alphabet.
  std::vector<size_t> per_group(static_cast<size_t>(b_prev) + 1, 0);
  for (uint16_t p : prev) ++per_group[std::min<size_t>(p, static_cast<size_t>(b_prev))];
  if (per_group.back()) throw jobs::CheckpointError("delta: parent symbol outside its alphabet (wrong parent?)");
  std::vector<uint16_t> cur(prev.size());
  size_t outside = 0;
  // s_cur = (s_prev + D) mod B* without a division: both are < B* (values that are not count as
  // outside and refuse the checkpoint).
  auto apply = [&](size_t i, uint16_t delta) {
    outside += delta >= b_star;
    const int sum = prev[i] + delta;
    cur[i] = static_cast<uint16_t>(sum >= b_star ? sum - b_star : sum);
  };
  switch (layout) {
    case static_cast<uint8_t>(DeltaLayout::kHuffmanOnly): {
      auto stream = huffman_decode(in);
      if (stream.size() != prev.size()) throw jobs::CheckpointError("delta: symbol count differs from the parent's (wrong parent?)");
      for (size_t i = 0; i < stream.size(); ++i) {
        if (stream[i] < 0 || stream[i] >= b_star) throw jobs::CheckpointError("delta: value outside the alphabet (corrupt)");
        apply(i, static_cast<uint16_t>(stream[i]));
      }
      break;
    }
    case static_cast<uint8_t>(DeltaLayout::kRleHuffman): {
      const auto d = decode_rle_huffman(in, prev.size());
      for (size_t i = 0; i < d.size(); ++i) apply(i, d[i]);
      break;
    }
    case static_cast<uint8_t>(DeltaLayout::kRearranged): {
      // Each group's deltas: per group (one vector each, small enough for the allocator to
      // recycle; one buffer of the whole tensor would be fresh pages on every decode) or, with
      // the shared code, all in one buffer.
      std::vector<std::vector<uint16_t>> groups(static_cast<size_t>(b_prev));
      std::vector<const uint16_t*> cursor(static_cast<size_t>(b_prev));
      const auto code = in.get<uint8_t>();
      if (code == kSharedCode) {
        groups[0] = decode_rle_huffman(in, prev.size());
        size_t at = 0;
        for (size_t g = 0; g < cursor.size(); ++g) {
          cursor[g] = groups[0].data() + at;
          at += per_group[g];
        }
      } else if (code == kCodePerGroup) {
        for (size_t g = 0; g < groups.size(); ++g) {
          if (per_group[g] == 0) continue;
          const auto mode = in.get<uint8_t>();
          if (mode > 1) throw jobs::CheckpointError(fmt::format("delta: unknown group mode {} (corrupt)", mode));
          groups[g] = mode == 0 ? std::vector<uint16_t>(per_group[g], 0) : decode_rle_huffman(in, per_group[g]);
          cursor[g] = groups[g].data();
        }
      } else {
        throw jobs::CheckpointError(fmt::format("delta: unknown group code {} (corrupt)", code));
      }
      // Walk the parent's symbols, popping each group's deltas in order.
      for (size_t i = 0; i < prev.size(); ++i) apply(i, *cursor[prev[i]]++);
      break;
    }
    default:
      throw jobs::CheckpointError(fmt::format("delta: unknown layout {} (corrupt)", layout));
  }
  if (outside) throw jobs::CheckpointError("delta: value outside the alphabet (corrupt)");
  return cur;
}

}  // namespace xp::compression
