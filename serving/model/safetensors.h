// safetensors files (Hugging Face's format: an 8-byte little-endian header length, a JSON header
// mapping tensor names to dtype, shape and byte offsets, then the raw data), single files and
// sharded checkpoints with model.safetensors.index.json. Every inconsistency — header length,
// dtype, shape against byte size, offsets outside the file, a tensor named by the index but
// absent — is an error naming the file and the tensor. Writing is atomic (temp file + rename).
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor/tensor.h"

namespace xp::serving {

struct SafetensorsEntry {
  std::string dtype;             // "F32", "F16", "BF16", "I32", "I64", "U8"
  std::vector<int64_t> shape;
  std::filesystem::path file;
  uint64_t offset = 0;           // absolute byte offset of the data in `file`
  uint64_t nbytes = 0;
};

class SafetensorsCheckpoint {
 public:
  // `path`: a .safetensors file, a model.safetensors.index.json, or a folder holding either.
  static SafetensorsCheckpoint open(const std::filesystem::path& path);

  bool has(const std::string& name) const { return entries_.count(name) > 0; }
  const SafetensorsEntry& entry(const std::string& name) const;  // throws naming the tensor
  std::vector<std::string> names() const;
  // Reads a tensor converted to `dtype` (f16/bf16 -> f32 widens exactly).
  tensor::Tensor load(const std::string& name, tensor::DType dtype = tensor::DType::kF32) const;
  // Rows [start, start + count) of a 2-D tensor (dim 0), or those columns of every row (dim 1),
  // converted to `dtype`: a tensor-parallel rank reads its slice through a memory map of the
  // file, never the whole tensor.
  tensor::Tensor load_slice(const std::string& name, int dim, int64_t start, int64_t count,
                            tensor::DType dtype = tensor::DType::kF32) const;

 private:
  std::map<std::string, SafetensorsEntry> entries_;
  std::filesystem::path origin_;
};

// The tensors described by a safetensors header (the JSON after the 8-byte length) in a file of
// `file_size` bytes; throws naming `file` and the tensor on any inconsistency. open() reads
// files through it; it takes text so that tests and the model-files fuzzer need no files.
std::map<std::string, SafetensorsEntry> parse_safetensors_header(std::string_view header, uint64_t file_size,
                                                                 const std::filesystem::path& file);

// Writes `tensors` (CPU, contiguous) as one safetensors file, atomically.
void write_safetensors(const std::filesystem::path& path, const std::map<std::string, tensor::Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace xp::serving
