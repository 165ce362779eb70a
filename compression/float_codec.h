// Lossless coding of the floats a DynaQuant container keeps exactly — the protected weights
// (bf16), raw tensors such as biases (fp32) and the k-means levels (fp32) — each value against
// an optional reference, in a delta the parent checkpoint's value at the same place:
//   with a reference     the difference of the two in sign-magnitude order (neighbouring floats
//                        are 1 apart), as its bit width (Huffman) and the bits below its leading
//                        one (raw): a value the parent holds exactly costs about a bit, a small
//                        drift a few bits
//   without one          its sign and exponent (Huffman) and its mantissa (raw)
// Protected weights move little between checkpoints and equal the parent's right after a
// restore; stored raw they were most of a late checkpoint.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "core/jobs/bytes.h"

namespace xp::compression {

enum class FloatFormat : uint8_t { kBf16, kF32 };

// A reference is a value's bit pattern, or kNoReference.
inline constexpr int64_t kNoReference = -1;

// `bits`: bit patterns of the format's width, one reference each.
void encode_floats(std::span<const uint32_t> bits, std::span<const int64_t> reference, FloatFormat format,
                   jobs::ByteWriter& out);
// As many values as references; throws jobs::CheckpointError on a malformed stream.
std::vector<uint32_t> decode_floats(jobs::ByteReader& in, std::span<const int64_t> reference, FloatFormat format);

}  // namespace xp::compression
