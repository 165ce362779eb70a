#include "serving/model/safetensors.h"

#include <fmt/format.h>

#include <cstring>
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
  std::ifstream in(file, std::ios::binary);
  if (!in) fail(file, "cannot open");
  uint64_t file_size = fs::file_size(file);
  uint64_t header_len = 0;
  if (file_size < 8 || !in.read(reinterpret_cast<char*>(&header_len), 8)) fail(file, "truncated: no header length");
  if (header_len > file_size - 8 || header_len > (100u << 20))
    fail(file, fmt::format("header length {} does not fit the {}-byte file", header_len, file_size));
  std::string header(header_len, '\0');
  in.read(header.data(), static_cast<std::streamsize>(header_len));
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(header);
  } catch (const nlohmann::json::exception& e) {
    fail(file, fmt::format("header is not valid JSON: {}", e.what()));
  }
  if (!j.is_object()) fail(file, "header is not a JSON object");
  uint64_t data_start = 8 + header_len;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const std::string& name = it.key();
    const auto& v = it.value();
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      fail(file, fmt::format("tensor '{}': needs dtype, shape and data_offsets", name));
    SafetensorsEntry e;
    e.dtype = v["dtype"].get<std::string>();
    DType dt = dtype_from(e.dtype, file, name);
    e.shape = v["shape"].get<std::vector<int64_t>>();
    auto offs = v["data_offsets"].get<std::vector<uint64_t>>();
    if (offs.size() != 2 || offs[1] < offs[0]) fail(file, fmt::format("tensor '{}': bad data_offsets", name));
    e.file = file;
    e.offset = data_start + offs[0];
    e.nbytes = offs[1] - offs[0];
    uint64_t expect = static_cast<uint64_t>(tensor::numel_of(e.shape)) * tensor::dtype_size(dt);
    if (e.nbytes != expect)
      fail(file, fmt::format("tensor '{}': shape {} of {} needs {} bytes, offsets give {}", name, tensor::shape_str(e.shape),
                             e.dtype, expect, e.nbytes));
    if (e.offset + e.nbytes > file_size)
      fail(file, fmt::format("tensor '{}': data ends at byte {}, past the end of the {}-byte file (truncated?)", name,
                             e.offset + e.nbytes, file_size));
    if (expect_only && !expect_only->count(name)) continue;
    out[name] = e;
  }
}

}  // namespace

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
    auto text = runtime::read_file(p);
    if (!text.is_ok()) fail(p, "cannot read");
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text.value());
    } catch (const nlohmann::json::exception& e) {
      fail(p, fmt::format("not valid JSON: {}", e.what()));
    }
    if (!j.contains("weight_map") || !j["weight_map"].is_object()) fail(p, "no weight_map");
    std::map<std::string, std::map<std::string, std::string>> by_file;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it)
      by_file[it.value().get<std::string>()][it.key()] = it.value().get<std::string>();
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
  Status s = runtime::write_file_atomic(path, out);
  if (!s.is_ok()) throw std::runtime_error(s.message());
}

}  // namespace xp::serving
