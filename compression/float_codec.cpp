#include "compression/float_codec.h"

#include <fmt/format.h>

#include <bit>
#include <stdexcept>

#include "compression/entropy.h"

namespace xp::compression {

namespace {

// Huffman symbols: a referenced value's difference width is 0..33; an unreferenced value's sign
// and exponent are kExponentBase + (bits >> mantissa).
constexpr int32_t kExponentBase = 64;

struct Format {
  int width;     // bits per value
  int mantissa;  // bits below the exponent
};

Format format_of(FloatFormat f) { return f == FloatFormat::kBf16 ? Format{16, 7} : Format{32, 23}; }

// Sign-magnitude bits → an integer in [−2^(w−1), 2^(w−1)) increasing with the float (−0 → −1,
// so every pattern, NaNs included, maps one to one).
int64_t ordered(uint32_t bits, int width) {
  const uint32_t magnitude = bits & ((uint32_t{1} << (width - 1)) - 1);
  return (bits >> (width - 1)) & 1u ? -static_cast<int64_t>(magnitude) - 1 : static_cast<int64_t>(magnitude);
}

uint32_t from_ordered(int64_t o, int width) {
  return o >= 0 ? static_cast<uint32_t>(o) : (uint32_t{1} << (width - 1)) | static_cast<uint32_t>(-(o + 1));
}

uint64_t zigzag(int64_t d) { return (static_cast<uint64_t>(d) << 1) ^ static_cast<uint64_t>(d >> 63); }
int64_t unzigzag(uint64_t z) { return static_cast<int64_t>(z >> 1) ^ -static_cast<int64_t>(z & 1); }

}  // namespace

void encode_floats(std::span<const uint32_t> bits, std::span<const int64_t> reference, FloatFormat format,
                   jobs::ByteWriter& out) {
  if (bits.size() != reference.size()) throw std::invalid_argument("encode_floats: one reference per value");
  const Format f = format_of(format);
  std::vector<int32_t> symbols(bits.size());
  std::vector<uint32_t> raw(bits.size());
  std::vector<uint8_t> widths(bits.size());
  for (size_t i = 0; i < bits.size(); ++i) {
    if (reference[i] == kNoReference) {
      symbols[i] = kExponentBase + static_cast<int32_t>(bits[i] >> f.mantissa);
      raw[i] = bits[i];
      widths[i] = static_cast<uint8_t>(f.mantissa);
    } else {
      const uint64_t z = zigzag(ordered(bits[i], f.width) - ordered(static_cast<uint32_t>(reference[i]), f.width));
      const int k = std::bit_width(z);  // ≤ width + 1
      symbols[i] = k;
      raw[i] = static_cast<uint32_t>(z);  // the bits below the leading one (pack_bits masks)
      widths[i] = static_cast<uint8_t>(k > 1 ? k - 1 : 0);
    }
  }
  huffman_encode(symbols, out);
  out.put_blob(pack_bits(raw, widths));
}

std::vector<uint32_t> decode_floats(jobs::ByteReader& in, std::span<const int64_t> reference, FloatFormat format) {
  const Format f = format_of(format);
  const std::vector<int32_t> symbols = huffman_decode(in);
  if (symbols.size() != reference.size())
    throw jobs::CheckpointError(fmt::format("floats: {} values coded, {} expected (corrupt)", symbols.size(), reference.size()));
  std::vector<uint8_t> widths(symbols.size());
  for (size_t i = 0; i < symbols.size(); ++i) {
    const int32_t s = symbols[i];
    const bool referenced = reference[i] != kNoReference;
    const bool ok = referenced ? s >= 0 && s <= f.width + 1
                               : s >= kExponentBase && s < kExponentBase + (int32_t{1} << (f.width - f.mantissa));
    if (!ok) throw jobs::CheckpointError(fmt::format("floats: symbol {} out of range (corrupt)", s));
    widths[i] = static_cast<uint8_t>(referenced ? std::max(s - 1, 0) : f.mantissa);
  }
  const std::vector<uint32_t> raw = unpack_bits(in.get_blob(), widths);
  std::vector<uint32_t> out(symbols.size());
  const int64_t lowest = -(int64_t{1} << (f.width - 1)), highest = (int64_t{1} << (f.width - 1)) - 1;
  for (size_t i = 0; i < symbols.size(); ++i) {
    const int32_t s = symbols[i];
    if (reference[i] == kNoReference) {
      out[i] = (static_cast<uint32_t>(s - kExponentBase) << f.mantissa) | raw[i];
      continue;
    }
    const uint64_t z = s <= 1 ? static_cast<uint64_t>(s) : (uint64_t{1} << (s - 1)) | raw[i];
    const int64_t o = ordered(static_cast<uint32_t>(reference[i]), f.width) + unzigzag(z);
    if (o < lowest || o > highest) throw jobs::CheckpointError("floats: difference outside the format (corrupt)");
    out[i] = from_ordered(o, f.width);
  }
  return out;
}

}  // namespace xp::compression
