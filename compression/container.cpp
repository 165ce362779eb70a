#include "compression/container.h"

#include <fmt/format.h>
#include <xxhash.h>
#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <memory>
#include <span>

#include "compression/float_codec.h"

namespace xp::compression {

namespace {

constexpr char kMagic[4] = {'D', 'Q', 'C', 'K'};
// 2: compact code tables, run-length classes, varint sizes; 3: levels, protected and raw values
// coded against the parent (float_codec.h), symbols before the protected values, the parent's
// fingerprint instead of group sizes in the rearranged layout.
constexpr uint16_t kVersion = 3;

uint32_t crc_of(const std::byte* p, size_t n) {
  uLong crc = crc32(0L, Z_NULL, 0);
  while (n > 0) {
    const auto chunk = static_cast<uInt>(std::min<size_t>(n, 1u << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(p), chunk);
    p += chunk;
    n -= chunk;
  }
  return static_cast<uint32_t>(crc);
}

void write_header(jobs::ByteWriter& out, const ContainerHeader& h, uint32_t n_tensors) {
  for (char c : kMagic) out.put<char>(c);
  out.put<uint16_t>(kVersion);
  out.put<uint64_t>(h.step);
  out.put<int64_t>(h.parent_step);
  out.put<uint32_t>(n_tensors);
  const QuantConfig& c = h.config;
  out.put<int32_t>(c.bins);
  out.put<int32_t>(c.embedding_bins);
  out.put<double>(c.prune_fraction);
  out.put<uint8_t>(static_cast<uint8_t>(c.prune_metric));
  out.put<double>(c.protect_fraction);
  out.put<double>(c.sigma);
  out.put<double>(c.alpha);
  out.put<uint64_t>(c.seed);
  out.put<uint8_t>(static_cast<uint8_t>(h.layout));
}

ContainerHeader read_header(jobs::ByteReader& in, uint32_t* n_tensors) {
  char magic[4];
  for (char& c : magic) c = in.get<char>();
  if (std::memcmp(magic, kMagic, 4) != 0) throw ContainerError("not a DynaQuant checkpoint (bad magic)");
  const auto version = in.get<uint16_t>();
  if (version != kVersion)
    throw ContainerError(fmt::format("DynaQuant checkpoint version {} (this build reads {}); hint: {}", version, kVersion,
                                     version < kVersion ? "written by an older build: compress the source checkpoint again"
                                                        : "written by a newer build: update exp"));
  ContainerHeader h;
  h.step = in.get<uint64_t>();
  h.parent_step = in.get<int64_t>();
  *n_tensors = in.get<uint32_t>();
  QuantConfig& c = h.config;
  c.bins = in.get<int32_t>();
  c.embedding_bins = in.get<int32_t>();
  c.prune_fraction = in.get<double>();
  c.prune_metric = static_cast<PruneMetric>(in.get<uint8_t>());
  c.protect_fraction = in.get<double>();
  c.sigma = in.get<double>();
  c.alpha = in.get<double>();
  c.seed = in.get<uint64_t>();
  h.layout = static_cast<DeltaLayout>(in.get<uint8_t>());
  return h;
}

std::vector<uint32_t> float_bits(const std::vector<float>& v) {
  std::vector<uint32_t> out(v.size());
  std::memcpy(out.data(), v.data(), v.size() * sizeof(float));
  return out;
}

std::vector<float> floats_of(const std::vector<uint32_t>& bits) {
  std::vector<float> out(bits.size());
  std::memcpy(out.data(), bits.data(), bits.size() * sizeof(float));
  return out;
}

// What each stored float is coded against (float_codec.h): the parent's value at the same place
// in a delta, nothing in a base. Encoder and decoder derive it alike from the parent.
std::vector<int64_t> raw_reference(const QuantizedTensor* parent, size_t n) {
  std::vector<int64_t> ref(n, kNoReference);
  if (parent && parent->is_raw() && parent->raw.size() == n)
    for (size_t i = 0; i < n; ++i) ref[i] = std::bit_cast<uint32_t>(parent->raw[i]);
  return ref;
}

std::vector<int64_t> level_reference(const QuantizedTensor* parent, size_t n) {
  std::vector<int64_t> ref(n, kNoReference);
  if (parent && !parent->is_raw())
    for (size_t i = 0; i < std::min(n, parent->levels.size()); ++i) ref[i] = std::bit_cast<uint32_t>(parent->levels[i]);
  return ref;
}

// Positions of t's protected symbols, ascending; refuses a symbol outside t's alphabet. Protected
// symbols are ~0.5% of a tensor: blocks without one are passed by a vectorized test.
std::vector<size_t> protected_positions(const QuantizedTensor& t) {
  const std::span<const uint16_t> symbols = t.symbols;
  const auto alphabet = static_cast<uint16_t>(t.alphabet()), value = static_cast<uint16_t>(alphabet - 1);
  std::vector<size_t> out;
  size_t n = 0;
  bool outside = false;
  auto scan = [&](size_t from, size_t to) {  // branch-free: a hit is unpredictable
    if (out.size() < n + (to - from)) out.resize(std::max(2 * out.size(), n + (to - from)));
    for (size_t k = from; k < to; ++k) {
      out[n] = k;
      n += symbols[k] == value;
      outside |= symbols[k] > value;
    }
  };
  constexpr size_t kBlock = 16;  // one 32-byte compare
  const size_t full = symbols.size() / kBlock * kBlock;
  for (size_t b = 0; b < full; b += kBlock) {
    unsigned hit = 0;
    for (size_t k = 0; k < kBlock; ++k) hit |= symbols[b + k] >= value;
    if (hit) scan(b, b + kBlock);
  }
  scan(full, symbols.size());
  if (outside) throw ContainerError(fmt::format("tensor '{}': symbol outside its alphabet", t.name));
  out.resize(n);
  return out;
}

// At each of q's protected positions, the parent's reconstruction there as bf16: its protected
// value or its level; none where it was pruned (a 0 says nothing about a large weight).
std::vector<int64_t> protected_reference(const QuantizedTensor& q, const QuantizedTensor* parent) {
  const std::vector<size_t> here = protected_positions(q);
  std::vector<int64_t> ref(here.size(), kNoReference);
  if (!parent) return ref;
  // The parent's protected values are in tensor order: merge its protected positions with ours.
  const std::vector<size_t> there = protected_positions(*parent);
  if (there.size() != parent->protected_bf16.size()) throw ContainerError("parent has fewer protected values than symbols");
  size_t j = 0;
  for (size_t i = 0; i < here.size(); ++i) {
    while (j < there.size() && there[j] < here[i]) ++j;
    const uint16_t ps = parent->symbols[here[i]];
    if (j < there.size() && there[j] == here[i]) ref[i] = parent->protected_bf16[j];
    else if (ps > 0) ref[i] = to_bf16(parent->levels[ps - 1u]);
  }
  return ref;
}

// XXH3-64 of everything a delta is coded against — the parent's symbols and stored floats — so a
// delta handed another parent of the same shapes is refused instead of decoded into garbage.
uint64_t fingerprint(const std::vector<QuantizedTensor>& tensors) {
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> st(XXH3_createState(), &XXH3_freeState);
  XXH3_64bits_reset(st.get());
  auto add = [&](const auto& v) { XXH3_64bits_update(st.get(), v.data(), v.size() * sizeof(v[0])); };
  for (const QuantizedTensor& t : tensors) {
    add(t.symbols);
    add(t.levels);
    add(t.protected_bf16);
    add(t.raw);
  }
  return XXH3_64bits_digest(st.get());
}

// Verifies the CRC trailer; returns the payload length.
size_t checked_payload(const std::vector<std::byte>& bytes) {
  if (bytes.size() < 4 + 4) throw ContainerError("DynaQuant checkpoint truncated");
  if (!crc32_trailer_ok(bytes))
    throw ContainerError("DynaQuant checkpoint is corrupt (CRC32 mismatch): refusing it; the previous checkpoint is unaffected");
  return bytes.size() - 4;
}

}  // namespace

void append_crc32(std::vector<std::byte>& bytes) {
  const uint32_t crc = crc_of(bytes.data(), bytes.size());
  const auto* c = reinterpret_cast<const std::byte*>(&crc);
  bytes.insert(bytes.end(), c, c + 4);
}

bool crc32_trailer_ok(const std::vector<std::byte>& bytes) {
  if (bytes.size() < 4) return false;
  uint32_t stored;
  std::memcpy(&stored, bytes.data() + bytes.size() - 4, 4);
  return stored == crc_of(bytes.data(), bytes.size() - 4);
}

std::vector<std::byte> encode_container(const ContainerHeader& header, const std::vector<QuantizedTensor>& tensors,
                                        const std::vector<QuantizedTensor>* parent) {
  const bool delta = header.parent_step >= 0;
  if (delta && (!parent || parent->size() != tensors.size()))
    throw std::invalid_argument("encode_container: a delta needs its parent's tensors");
  jobs::ByteWriter out;
  write_header(out, header, static_cast<uint32_t>(tensors.size()));
  if (delta) out.put<uint64_t>(fingerprint(*parent));
  for (size_t i = 0; i < tensors.size(); ++i) {
    const QuantizedTensor& q = tensors[i];
    const QuantizedTensor* p = delta ? &(*parent)[i] : nullptr;
    out.put_string(q.name);
    out.put_vector(q.shape);
    out.put_string(q.layer_type);
    if (q.is_raw()) {
      encode_floats(float_bits(q.raw), raw_reference(p, q.raw.size()), FloatFormat::kF32, out);
      continue;
    }
    if (p && (p->name != q.name || p->symbols.size() != q.symbols.size() || p->is_raw()))
      throw std::invalid_argument(fmt::format("encode_container: parent tensor {} does not match '{}'", i, q.name));
    out.put_varint(q.levels.size());
    encode_floats(float_bits(q.levels), level_reference(p, q.levels.size()), FloatFormat::kF32, out);
    if (p) encode_delta(p->symbols, q.symbols, p->alphabet(), q.alphabet(), header.layout, out);
    else encode_base(q.symbols, out);
    const std::vector<uint32_t> protected_bits(q.protected_bf16.begin(), q.protected_bf16.end());
    encode_floats(protected_bits, protected_reference(q, p), FloatFormat::kBf16, out);
  }
  std::vector<std::byte> bytes = out.take();
  append_crc32(bytes);
  return bytes;
}

ContainerHeader read_container_header(const std::vector<std::byte>& bytes) {
  jobs::ByteReader in(bytes.data(), checked_payload(bytes));
  uint32_t n = 0;
  try {
    return read_header(in, &n);
  } catch (const jobs::CheckpointError& e) {
    throw ContainerError(std::string("DynaQuant checkpoint header: ") + e.what());
  }
}

std::vector<QuantizedTensor> decode_container(const std::vector<std::byte>& bytes,
                                              const std::vector<QuantizedTensor>* parent, ContainerHeader* header_out) {
  jobs::ByteReader in(bytes.data(), checked_payload(bytes));
  try {
    uint32_t n = 0;
    ContainerHeader h = read_header(in, &n);
    const bool delta = h.parent_step >= 0;
    if (delta && !parent)
      throw ContainerError(fmt::format("checkpoint {} is a delta against step {}, which is missing", h.step, h.parent_step));
    if (delta && parent->size() != n)
      throw ContainerError(fmt::format("checkpoint {} has {} tensors, its parent {} (a different model?)", h.step, n,
                                       parent->size()));
    if (delta && in.get<uint64_t>() != fingerprint(*parent))
      throw ContainerError(fmt::format("checkpoint {} is a delta against another step-{} checkpoint than the one given "
                                       "(its contents differ: a different run or model?)", h.step, h.parent_step));
    std::vector<QuantizedTensor> out(n);
    for (uint32_t i = 0; i < n; ++i) {
      QuantizedTensor& q = out[i];
      q.name = in.get_string();
      q.shape = in.get_vector<int64_t>();
      q.layer_type = in.get_string();
      int64_t numel = 1;
      for (int64_t s : q.shape) {
        if (s < 0 || s > (int64_t{1} << 40)) throw ContainerError(fmt::format("tensor '{}' has a dimension of {}", q.name, s));
        constexpr int64_t kCap = int64_t{1} << 50;  // saturate instead of overflowing; refused below
        numel = s != 0 && numel > kCap / s ? kCap : numel * s;
      }
      const QuantizedTensor* p = delta ? &(*parent)[i] : nullptr;
      if (q.is_raw()) {
        // Every raw value costs at least a bit: a larger count is corrupt (and is not allocated).
        if (numel > static_cast<int64_t>(in.remaining()) * 8)
          throw ContainerError(fmt::format("tensor '{}': shape larger than the payload", q.name));
        q.raw = floats_of(decode_floats(in, raw_reference(p, static_cast<size_t>(numel)), FloatFormat::kF32));
        continue;
      }
      if (p && (p->name != q.name || p->shape != q.shape || p->is_raw()))
        throw ContainerError(fmt::format("tensor {} is '{}' {} here but '{}' {} in the parent (a different model?)", i,
                                         q.name, tensor::shape_str(q.shape), p->name, tensor::shape_str(p->shape)));
      const auto levels = in.get_varint();
      if (levels == 0 || levels > 65000) throw ContainerError(fmt::format("tensor '{}': bad level count", q.name));
      q.levels = floats_of(decode_floats(in, level_reference(p, levels), FloatFormat::kF32));
      q.symbols = p ? decode_delta(p->symbols, p->alphabet(), in) : decode_base(in, static_cast<size_t>(numel));
      // protected_reference() also refuses a symbol outside the alphabet.
      for (uint32_t b : decode_floats(in, protected_reference(q, p), FloatFormat::kBf16))
        q.protected_bf16.push_back(static_cast<uint16_t>(b));
    }
    if (!in.at_end()) throw ContainerError("trailing bytes after the last tensor");
    if (header_out) *header_out = h;
    return out;
  } catch (const jobs::CheckpointError& e) {
    throw ContainerError(std::string("DynaQuant checkpoint payload: ") + e.what());
  }
}

}  // namespace xp::compression
