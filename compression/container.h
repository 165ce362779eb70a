// The DynaQuant checkpoint container (docs/dynaquant.md; the layout is a project choice):
//   header   magic "DQCK", u16 version, u64 step, i64 parent_step (−1 = base), u32 n_tensors,
//            the QuantConfig chosen by the search, u8 delta layout; a delta: the XXH3-64 of its
//            parent's symbols and stored floats
//   tensor   name, shape, layer type; raw: the f32 values; quantized: K and the levels (f32,
//            ascending), the symbols — base: RLE + Huffman, delta against the parent's symbols
//            (delta_codec.h) — and the protected values (bf16, in tensor order). Every float is
//            coded exactly by float_codec.h, in a delta against the parent's value at the same
//            place (raw value, level, or the protected value or level at a protected position).
//   trailer  CRC32 of everything above
// decode() checks the CRC before anything else, so any flipped byte is refused; a delta needs
// its parent's tensors (same names, shapes, step and fingerprint) and refuses any other parent.
#pragma once
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <vector>

#include "compression/delta_codec.h"
#include "compression/quantizer.h"

namespace xp::compression {

class ContainerError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ContainerHeader {
  uint64_t step = 0;
  int64_t parent_step = -1;  // −1: a base checkpoint
  QuantConfig config;
  DeltaLayout layout = DeltaLayout::kRearranged;
};

// The CRC32 (zlib) trailer both DynaQuant blobs end with (this container and the optimizer
// state): appended to `bytes`, and checked — true when the last four bytes are the CRC32 of
// the rest.
void append_crc32(std::vector<std::byte>& bytes);
bool crc32_trailer_ok(const std::vector<std::byte>& bytes);

// `parent` must be given for a delta (header.parent_step ≥ 0) and be that checkpoint's tensors.
std::vector<std::byte> encode_container(const ContainerHeader& header, const std::vector<QuantizedTensor>& tensors,
                                        const std::vector<QuantizedTensor>* parent);

// Reads only the header (after checking the CRC): which parent a delta needs.
ContainerHeader read_container_header(const std::vector<std::byte>& bytes);

// Throws ContainerError on a bad CRC, magic or version, a missing or mismatched parent, or a
// malformed payload.
std::vector<QuantizedTensor> decode_container(const std::vector<std::byte>& bytes,
                                              const std::vector<QuantizedTensor>* parent, ContainerHeader* header = nullptr);

}  // namespace xp::compression
