// Quantization-aware delta coding of symbol tensors (DynaQuant, docs/dynaquant.md).
// A tensor's symbols are {0 = pruned, 1..K = level, K+1 = protected}, B = K + 2 of them.
// A base checkpoint codes its symbols directly (RLE + Huffman); a delta checkpoint codes
// D = (s_cur − s_prev) mod B*, B* = max(B_prev, B_cur), decoded exactly as
// s_cur = (s_prev + D) mod B*. The layouts are the paper's ablation:
//   kHuffmanOnly  Huffman over D in parameter order
//   kRleHuffman   RLE (sign trick) then Huffman, in parameter order
//   kRearranged   D grouped by s_prev (parameter order kept inside a group), RLE + Huffman with
//                 a code per group (one byte for a group whose D are all 0) or one code for all,
//                 whichever is smaller; the decoder walks s_prev and pops from that group, so no
//                 permutation or group size is stored. It wins because migration rates differ a
//                 lot between buckets.
// A delta decoded against the wrong parent of the same size is not detected here: the container
// checks the parent's fingerprint first.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "core/jobs/bytes.h"

namespace xp::compression {

enum class DeltaLayout : uint8_t { kHuffmanOnly = 0, kRleHuffman = 1, kRearranged = 2 };

void encode_base(std::span<const uint16_t> symbols, jobs::ByteWriter& out);
std::vector<uint16_t> decode_base(jobs::ByteReader& in, size_t count);

// prev symbols are < b_prev, cur symbols < b_cur.
void encode_delta(std::span<const uint16_t> prev, std::span<const uint16_t> cur, int b_prev, int b_cur,
                  DeltaLayout layout, jobs::ByteWriter& out);
std::vector<uint16_t> decode_delta(std::span<const uint16_t> prev, int b_prev, jobs::ByteReader& in);

}  // namespace xp::compression
