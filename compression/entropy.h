// The entropy-coding stages of DynaQuant's checkpoint deltas (docs/dynaquant.md):
// canonical Huffman over a stream of int32 values, and run-length coding with the sign trick
// (values written negated, so ≤ 0; a positive number after a value is its run length, written
// only for runs longer than 1). Both write into / read from the checkpoint byte encoding and
// throw jobs::CheckpointError on malformed input rather than decoding garbage.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "core/jobs/bytes.h"

namespace xp::compression {

// Writes the code table (one varint per symbol: symbol and code length), the value count and the
// bit stream.
void huffman_encode(std::span<const int32_t> stream, jobs::ByteWriter& out);
std::vector<int32_t> huffman_decode(jobs::ByteReader& in);

// Values must be ≥ 0 (symbols or deltas); the RLE stream is what Huffman codes next.
std::vector<int32_t> rle_encode(std::span<const uint16_t> values);
std::vector<uint16_t> rle_decode(std::span<const int32_t> stream, size_t expected_count);
// Huffman coding of an RLE token stream, long run lengths coded as a class plus raw bits, and its
// inverse fused with rle_decode (one pass, no token stream).
void huffman_encode_runs(std::span<const int32_t> rle_tokens, jobs::ByteWriter& out);
std::vector<uint16_t> huffman_decode_runs(jobs::ByteReader& in, size_t expected_count);

// The canonical Huffman code of a token stream, from a histogram pass: huffman_encode (runs =
// false) and huffman_encode_runs (runs = true) in two steps, so a caller can weigh codes before
// writing one.
class TokenCode {
 public:
  TokenCode(std::span<const int32_t> stream, bool runs);
  size_t size() const;  // the bytes write() adds
  // Writes the code table, the token count and the bits of the stream the code was built from.
  void write(std::span<const int32_t> stream, jobs::ByteWriter& out) const;
  // The bytes of one code for several streams written back to back as one.
  static size_t joint_size(std::span<const TokenCode> codes);

 private:
  TokenCode() = default;
  uint64_t payload_bits() const;  // codes and raw bits
  bool runs_ = false;
  std::vector<int32_t> symbols_;  // in order of first appearance
  std::vector<uint64_t> counts_;
  std::vector<uint8_t> lengths_;
  std::vector<uint32_t> ranks_;   // each token's symbol, as its index in symbols_
  uint64_t tokens_ = 0;
  uint64_t raw_bits_ = 0;         // the bits below long run lengths' classes
};

// Raw bits, most significant first: the low widths[i] bits of values[i] (widths ≤ 32), and the
// inverse, which throws jobs::CheckpointError when `bytes` hold fewer bits than the widths need.
std::vector<uint8_t> pack_bits(std::span<const uint32_t> values, std::span<const uint8_t> widths);
std::vector<uint32_t> unpack_bits(const std::vector<uint8_t>& bytes, std::span<const uint8_t> widths);

// Canonical code lengths for `frequencies` (index = symbol rank), at most 30 bits.
std::vector<uint8_t> huffman_code_lengths(std::span<const uint64_t> frequencies);

}  // namespace xp::compression
