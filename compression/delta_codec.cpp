#include "compression/delta_codec.h"

#include <fmt/format.h>

#include <algorithm>

#include "compression/entropy.h"

namespace xp::compression {

namespace {

void encode_rle_huffman(std::span<const uint16_t> values, jobs::ByteWriter& out) {
  huffman_encode_runs(rle_encode(values), out);
}

std::vector<uint16_t> decode_rle_huffman(jobs::ByteReader& in, size_t count) {
  return huffman_decode_runs(in, count);
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
      // Each group: its size (redundant — the decoder counts the parent's symbols — but it
      // catches a wrong parent cheaply), then its stream unless it is empty.
      for (size_t g = 0; g + 1 < start.size(); ++g) {
        const size_t n = start[g + 1] - start[g];
        out.put_varint(n);
        if (n) encode_rle_huffman(std::span<const uint16_t>(grouped).subspan(start[g], n), out);
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
      std::vector<std::vector<uint16_t>> groups(static_cast<size_t>(b_prev));
      for (size_t g = 0; g < groups.size(); ++g) {
        const auto n = in.get_varint();
        if (n != per_group[g]) throw jobs::CheckpointError("delta: group sizes differ from the parent's (wrong parent?)");
        if (n) groups[g] = decode_rle_huffman(in, n);
      }
      // Walk the parent's symbols, popping each group's deltas in order.
      std::vector<const uint16_t*> cursor(groups.size());
      for (size_t g = 0; g < groups.size(); ++g) cursor[g] = groups[g].data();
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
