// The entropy-coding stages of DynaQuant's checkpoint deltas (training.md §2.2 Step F):
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

// Canonical code lengths for `frequencies` (index = symbol rank), at most 30 bits.
std::vector<uint8_t> huffman_code_lengths(std::span<const uint64_t> frequencies);

}  // namespace xp::compression
