#include "serving/model/safetensors.h"

#include <fmt/format.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "core/runtime/files.h"

namespace xp::serving {
namespace fs = std::filesystem;
using tensor::DType;
using tensor::Tensor;

namespace {

[[noreturn]] void fail(const fs::path& file, const std::string& what) {
  throw std::runtime_error(fmt::format("{}: {}", file.string(), what));
}

DType dtype_from(const std::string& s, const fs::path& file, const std::string& name) {
  if (s == "F32") return DType::kF32;
  if (s == "F16") return DType::kF16;
  if (s == "BF16") return DType::kBF16;
  if (s == "I32") return DType::kI32;
  if (s == "I64") return DType::kI64;
  if (s == "U8") return DType::kU8;
  fail(file, fmt::format("tensor '{}': unsupported dtype '{}' (supported: F32, F16, BF16, I32, I64, U8)", name, s));
}

std::string dtype_to(DType t) {
  switch (t) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    case DType::kI32: return "I32";
    case DType::kI64: return "I64";
    case DType::kU8: return "U8";
  }
  return "?";
}

void read_file_entries(const fs::path& file, std::map<std::string, SafetensorsEntry>& out,
                       const std::map<std::string, std::string>* expect_only = nullptr) {
  if (!fs::is_regular_file(file)) fail(file, "missing or not a regular file");
  std::ifstream in(file, std::ios::binary);
  if (!in) fail(file, "cannot open");
  const uint64_t file_size = fs::file_size(file);
  uint64_t header_len = 0;
  if (file_size < 8 || !in.read(reinterpret_cast<char*>(&header_len), 8)) fail(file, "truncated: no header length");
  if (header_len > file_size - 8 || header_len > (100u << 20))
    fail(file, fmt::format("header length {} does not fit the {}-byte file", header_len, file_size));
  std::string header(header_len, '\0');
  if (!in.read(header.data(), static_cast<std::streamsize>(header_len))) fail(file, "truncated: header cut short");
  for (auto& [name, e] : parse_safetensors_header(header, file_size, file))
    if (!expect_only || expect_only->count(name)) out[name] = std::move(e);
}

}  // namespace

std::map<std::string, SafetensorsEntry> parse_safetensors_header(std::string_view header, uint64_t file_size,
                                                                 const fs::path& file) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(header);
  } catch (const nlohmann::json::exception& e) {
    fail(file, fmt::format("header is not valid JSON: {}", e.what()));
  }
  if (!j.is_object()) fail(file, "header is not a JSON object");
  const uint64_t data_start = 8 + header.size();
  if (data_start > file_size) fail(file, fmt::format("header length {} does not fit the {}-byte file", header.size(), file_size));
  const uint64_t data_bytes = file_size - data_start;
  std::map<std::string, SafetensorsEntry> out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    if (name == "__metadata__") continue;
    const nlohmann::json& v = it.value();
    auto bad = [&](const std::string& why) { fail(file, fmt::format("tensor '{}': {}", name, why)); };
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      bad("needs dtype, shape and data_offsets");
    const nlohmann::json &dtype = v["dtype"], &shape = v["shape"], &offsets = v["data_offsets"];
    if (!dtype.is_string()) bad(fmt::format("dtype {} is not a string such as \"F32\"", dtype.dump()));
    SafetensorsEntry e;
    e.dtype = dtype.get<std::string>();
    const DType dt = dtype_from(e.dtype, file, name);
    // Sizes are checked for overflow as they multiply: a wrapped product could match the offsets.
    if (!shape.is_array()) bad(fmt::format("shape {} is not a list of sizes", shape.dump()));
    uint64_t bytes = tensor::dtype_size(dt);
    bool overflow = false;
    for (const nlohmann::json& n : shape) {
      if (!n.is_number_unsigned()) bad(fmt::format("shape {} is not a list of non-negative integers", shape.dump()));
      const uint64_t size = n.get<uint64_t>();
      overflow = overflow || size > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
                 __builtin_mul_overflow(bytes, size, &bytes);
      e.shape.push_back(static_cast<int64_t>(size));
    }
    if (overflow) bad(fmt::format("shape {} of {} is larger than any file", shape.dump(), e.dtype));
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned())
      bad(fmt::format("data_offsets {} is not [begin, end] in bytes", offsets.dump()));
    const uint64_t begin = offsets[0].get<uint64_t>(), end = offsets[1].get<uint64_t>();
    if (end < begin) bad(fmt::format("data_offsets [{}, {}] end before they begin", begin, end));
    e.file = file;
    e.nbytes = end - begin;
    if (e.nbytes != bytes)
      bad(fmt::format("shape {} of {} needs {} bytes, offsets give {}", tensor::shape_str(e.shape), e.dtype, bytes, e.nbytes));
    if (end > data_bytes)
      bad(fmt::format("data ends at byte {} of the data section, past its {} bytes (truncated?)", end, data_bytes));
    e.offset = data_start + begin;
    out[name] = std::move(e);
  }
  return out;
}

SafetensorsCheckpoint SafetensorsCheckpoint::open(const fs::path& path) {
  SafetensorsCheckpoint c;
  fs::path p = path;
  if (fs::is_directory(p)) {
    if (fs::exists(p / "model.safetensors.index.json")) p /= "model.safetensors.index.json";
    else if (fs::exists(p / "model.safetensors")) p /= "model.safetensors";
    else fail(path, "holds neither model.safetensors nor model.safetensors.index.json");
  }
  c.origin_ = p;
  if (p.extension() == ".json") {
    std::string text;
    try {
      text = runtime::read_file(p);
    } catch (const runtime::IoError&) {
      fail(p, "cannot read");
    }
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      fail(p, fmt::format("not valid JSON: {}", e.what()));
    }
    if (!j.contains("weight_map") || !j["weight_map"].is_object()) fail(p, "no weight_map");
    std::map<std::string, std::map<std::string, std::string>> by_file;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it.value().is_string() || it.value().get<std::string>().empty())
        fail(p, fmt::format("weight_map: tensor '{}' maps to {}, not to a file name", it.key(), it.value().dump()));
      by_file[it.value().get<std::string>()][it.key()] = it.value().get<std::string>();
    }
    for (const auto& [file, names] : by_file) {
      read_file_entries(p.parent_path() / file, c.entries_, &names);
      for (const auto& [name, f] : names)
        if (!c.entries_.count(name))
          fail(p.parent_path() / file, fmt::format("tensor '{}' is listed in {} but missing", name, p.filename().string()));
    }
  } else {
    read_file_entries(p, c.entries_);
  }
  return c;
}

const SafetensorsEntry& SafetensorsCheckpoint::entry(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) fail(origin_, fmt::format("missing tensor '{}'", name));
  return it->second;
}

std::vector<std::string> SafetensorsCheckpoint::names() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : entries_) out.push_back(k);
  return out;
}

Tensor SafetensorsCheckpoint::load(const std::string& name, DType dtype) const {
  const SafetensorsEntry& e = entry(name);
  Tensor raw = Tensor::empty(e.shape, dtype_from(e.dtype, e.file, name));
  std::ifstream in(e.file, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(e.offset));
  if (!in.read(static_cast<char*>(raw.raw_data()), static_cast<std::streamsize>(e.nbytes)))
    fail(e.file, fmt::format("tensor '{}': read failed", name));
  return raw.to(dtype);
}

Tensor SafetensorsCheckpoint::load_slice(const std::string& name, int dim, int64_t start, int64_t count, DType dtype) const {
  const SafetensorsEntry& e = entry(name);
  if (e.shape.size() != 2 || dim < 0 || dim > 1 || start < 0 || count < 1 || start + count > e.shape[static_cast<size_t>(dim)])
    fail(e.file, fmt::format("tensor '{}' of shape {}: no slice [{}, {}) along dimension {}", name, tensor::shape_str(e.shape),
                             start, start + count, dim));
  const DType stored = dtype_from(e.dtype, e.file, name);
  const size_t elem = tensor::dtype_size(stored);
  const int64_t rows = e.shape[0], cols = e.shape[1];
  Tensor raw = Tensor::empty(dim == 0 ? std::vector<int64_t>{count, cols} : std::vector<int64_t>{rows, count}, stored);
  const int fd = ::open(e.file.c_str(), O_RDONLY);
  if (fd < 0) fail(e.file, fmt::format("tensor '{}': cannot open: {}", name, std::strerror(errno)));
  const size_t length = static_cast<size_t>(e.offset + e.nbytes);
  void* map = ::mmap(nullptr, length, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) fail(e.file, fmt::format("tensor '{}': cannot map: {}", name, std::strerror(errno)));
  const auto* base = static_cast<const char*>(map) + e.offset;
  auto* out = static_cast<char*>(raw.raw_data());
  if (dim == 0) {
    std::memcpy(out, base + static_cast<size_t>(start * cols) * elem, static_cast<size_t>(count * cols) * elem);
  } else {
    for (int64_t r = 0; r < rows; ++r)
      std::memcpy(out + static_cast<size_t>(r * count) * elem, base + static_cast<size_t>(r * cols + start) * elem,
                  static_cast<size_t>(count) * elem);
  }
  ::munmap(map, length);
  return raw.to(dtype);
}

void write_safetensors(const fs::path& path, const std::map<std::string, Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    header[name] = {{"dtype", dtype_to(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  std::string h = header.dump();
  while ((8 + h.size()) % 8) h += ' ';  // keep the data 8-byte aligned, as the reference writer does
  std::string out;
  out.reserve(8 + h.size() + offset);
  uint64_t len = h.size();
  out.append(reinterpret_cast<const char*>(&len), 8);
  out += h;
  for (const auto& [name, t] : tensors) {
    Tensor c = t.to(tensor::Device::kCPU).contiguous();
    out.append(static_cast<const char*>(c.raw_data()), c.nbytes());
  }
  runtime::write_file_atomic(path, out);
}

}  // namespace xp::serving
