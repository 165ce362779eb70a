#include "compression/delta_codec.h"

#include <fmt/format.h>

#include <algorithm>

#include "compression/entropy.h"

namespace xp::compression {

namespace {

void encode_rle_huffman(std::span<const uint16_t> values, jobs::ByteWriter& out) {
  huffman_encode(rle_encode(values), out);
}

std::vector<uint16_t> decode_rle_huffman(jobs::ByteReader& in, size_t count) {
  return rle_decode(huffman_decode(in), count);
}

}  // namespace

void encode_base(std::span<const uint16_t> symbols, jobs::ByteWriter& out) { encode_rle_huffman(symbols, out); }

std::vector<uint16_t> decode_base(jobs::ByteReader& in, size_t count) { return decode_rle_huffman(in, count); }

void encode_delta(std::span<const uint16_t> prev, std::span<const uint16_t> cur, int b_prev, int b_cur,
                  DeltaLayout layout, jobs::ByteWriter& out) {
  if (prev.size() != cur.size())
    throw std::invalid_argument(fmt::format("encode_delta: {} previous symbols for {} current", prev.size(), cur.size()));
  const int b_star = std::max(b_prev, b_cur);
  std::vector<uint16_t> d(cur.size());
  for (size_t i = 0; i < cur.size(); ++i) {
    if (prev[i] >= b_prev || cur[i] >= b_cur) throw std::invalid_argument("encode_delta: symbol outside its alphabet");
    d[i] = static_cast<uint16_t>((cur[i] - prev[i] + b_star) % b_star);
  }
  out.put<uint16_t>(static_cast<uint16_t>(b_star));
  out.put<uint8_t>(static_cast<uint8_t>(layout));
  switch (layout) {
    case DeltaLayout::kHuffmanOnly: {
      std::vector<int32_t> stream(d.begin(), d.end());
      huffman_encode(stream, out);
      break;
    }
    case DeltaLayout::kRleHuffman:
      encode_rle_huffman(d, out);
      break;
    case DeltaLayout::kRearranged: {
      std::vector<std::vector<uint16_t>> groups(static_cast<size_t>(b_prev));
      for (size_t i = 0; i < d.size(); ++i) groups[prev[i]].push_back(d[i]);
      for (const auto& g : groups) {
        out.put<uint64_t>(g.size());
        encode_rle_huffman(g, out);
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
  for (uint16_t p : prev)
    if (p >= b_prev) throw jobs::CheckpointError("delta: parent symbol outside its alphabet (wrong parent?)");
  std::vector<uint16_t> d;
  switch (layout) {
    case static_cast<uint8_t>(DeltaLayout::kHuffmanOnly): {
      auto stream = huffman_decode(in);
      if (stream.size() != prev.size()) throw jobs::CheckpointError("delta: symbol count differs from the parent's (wrong parent?)");
      for (int32_t v : stream) {
        if (v < 0 || v >= b_star) throw jobs::CheckpointError("delta: value outside the alphabet (corrupt)");
        d.push_back(static_cast<uint16_t>(v));
      }
      break;
    }
    case static_cast<uint8_t>(DeltaLayout::kRleHuffman):
      d = decode_rle_huffman(in, prev.size());
      break;
    case static_cast<uint8_t>(DeltaLayout::kRearranged): {
      std::vector<std::vector<uint16_t>> groups(static_cast<size_t>(b_prev));
      std::vector<size_t> expected(static_cast<size_t>(b_prev), 0);
      for (uint16_t p : prev) ++expected[p];
      for (size_t g = 0; g < groups.size(); ++g) {
        const auto n = in.get<uint64_t>();
        if (n != expected[g]) throw jobs::CheckpointError("delta: group sizes differ from the parent's (wrong parent?)");
        groups[g] = decode_rle_huffman(in, n);
      }
      std::vector<size_t> next(groups.size(), 0);
      d.reserve(prev.size());
      for (uint16_t p : prev) d.push_back(groups[p][next[p]++]);
      break;
    }
    default:
      throw jobs::CheckpointError(fmt::format("delta: unknown layout {} (corrupt)", layout));
  }
  std::vector<uint16_t> cur(prev.size());
  for (size_t i = 0; i < prev.size(); ++i) {
    if (d[i] >= b_star) throw jobs::CheckpointError("delta: value outside the alphabet (corrupt)");
    cur[i] = static_cast<uint16_t>((prev[i] + d[i]) % b_star);
  }
  return cur;
}

}  // namespace xp::compression
