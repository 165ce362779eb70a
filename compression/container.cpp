#include "compression/container.h"

#include <fmt/format.h>
#include <zlib.h>

#include <cstring>

namespace xp::compression {

namespace {

constexpr char kMagic[4] = {'D', 'Q', 'C', 'K'};
constexpr uint16_t kVersion = 2;  // 2: compact code tables, run-length classes, varint sizes

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
  for (size_t i = 0; i < tensors.size(); ++i) {
    const QuantizedTensor& q = tensors[i];
    out.put_string(q.name);
    out.put_vector(q.shape);
    out.put_string(q.layer_type);
    if (q.is_raw()) {
      out.put_vector(q.raw);
      continue;
    }
    out.put_vector(q.levels);
    out.put_vector(q.protected_bf16);
    const QuantizedTensor* p = delta ? &(*parent)[i] : nullptr;
    if (p && (p->name != q.name || p->symbols.size() != q.symbols.size() || p->is_raw()))
      throw std::invalid_argument(fmt::format("encode_container: parent tensor {} does not match '{}'", i, q.name));
    if (p) encode_delta(p->symbols, q.symbols, p->alphabet(), q.alphabet(), header.layout, out);
    else encode_base(q.symbols, out);
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
    std::vector<QuantizedTensor> out(n);
    for (uint32_t i = 0; i < n; ++i) {
      QuantizedTensor& q = out[i];
      q.name = in.get_string();
      q.shape = in.get_vector<int64_t>();
      q.layer_type = in.get_string();
      int64_t numel = 1;
      for (int64_t s : q.shape) {
        if (s < 0) throw ContainerError(fmt::format("tensor '{}' has a negative dimension", q.name));
        numel *= s;
      }
      if (q.is_raw()) {
        q.raw = in.get_vector<float>();
        if (static_cast<int64_t>(q.raw.size()) != numel) throw ContainerError(fmt::format("tensor '{}': size mismatch", q.name));
        continue;
      }
      q.levels = in.get_vector<float>();
      q.protected_bf16 = in.get_vector<uint16_t>();
      if (q.levels.empty() || q.levels.size() > 65000) throw ContainerError(fmt::format("tensor '{}': bad level count", q.name));
      if (delta) {
        const QuantizedTensor& p = (*parent)[i];
        if (p.name != q.name || p.shape != q.shape || p.is_raw())
          throw ContainerError(fmt::format("tensor {} is '{}' {} here but '{}' {} in the parent (a different model?)", i,
                                           q.name, tensor::shape_str(q.shape), p.name, tensor::shape_str(p.shape)));
        q.symbols = decode_delta(p.symbols, p.alphabet(), in);
      } else {
        q.symbols = decode_base(in, static_cast<size_t>(numel));
      }
      size_t protected_count = 0, outside = 0;
      const auto alphabet = static_cast<uint16_t>(q.alphabet());
      for (uint16_t s : q.symbols) {
        outside += s >= alphabet;
        protected_count += s == alphabet - 1;
      }
      if (outside) throw ContainerError(fmt::format("tensor '{}': symbol outside its alphabet", q.name));
      if (protected_count != q.protected_bf16.size())
        throw ContainerError(fmt::format("tensor '{}': {} protected symbols but {} protected values", q.name,
                                         protected_count, q.protected_bf16.size()));
    }
    if (!in.at_end()) throw ContainerError("trailing bytes after the last tensor");
    if (header_out) *header_out = h;
    return out;
  } catch (const jobs::CheckpointError& e) {
    throw ContainerError(std::string("DynaQuant checkpoint payload: ") + e.what());
  }
}

}  // namespace xp::compression
