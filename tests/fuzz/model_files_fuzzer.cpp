// libFuzzer target over the model files a user hands the engine: a config.json, or a safetensors
// header. The first byte picks which (even: config.json, odd: header); for a header the next two
// bytes give the size of the data section after it; the rest is the file's text. Bad input must
// end as a std::runtime_error that names the file — what the engine reports before serving — so
// any other exception (the JSON library's own type errors, bad_alloc), a crash, an over-read or
// UB is a bug. What parses must hold together: a config round-trips through to_json and has
// finite, non-negative RoPE frequencies; every tensor of a header lies inside the file, sized
// by its shape.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string_view>

#include "serving/model/llama.h"
#include "serving/model/safetensors.h"

namespace {

const std::filesystem::path kFile = "fuzz/input.file";

void check_config(std::string_view text) {
  using xp::serving::LlamaConfig;
  const LlamaConfig c = LlamaConfig::from_json(text, kFile);
  if (c.hidden_size % c.num_attention_heads || c.num_attention_heads % c.num_key_value_heads || c.head_dim() % 2)
    __builtin_trap();
  if (c.head_dim() <= 4096)
    for (float f : c.rope_inverse_frequencies())
      if (!std::isfinite(f) || f < 0) __builtin_trap();  // 0 (underflow) leaves a pair unrotated
  const LlamaConfig back = LlamaConfig::from_json(c.to_json(), kFile);
  if (back.to_json() != c.to_json()) __builtin_trap();
}

void check_header(std::string_view header, uint64_t data_bytes) {
  const uint64_t file_size = 8 + header.size() + data_bytes;
  for (const auto& [name, e] : xp::serving::parse_safetensors_header(header, file_size, kFile)) {
    if (e.offset < 8 + header.size() || e.nbytes > file_size || e.offset > file_size - e.nbytes) __builtin_trap();
    uint64_t bytes = e.dtype == "I64" ? 8 : e.dtype == "F32" || e.dtype == "I32" ? 4 : e.dtype == "U8" ? 1 : 2;
    for (int64_t n : e.shape) bytes *= static_cast<uint64_t>(n);
    if (bytes != e.nbytes) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data) + 3, size - 3);
  try {
    if (data[0] % 2 == 0) check_config(text);
    else check_header(text, data[1] | static_cast<uint64_t>(data[2]) << 8);
  } catch (const std::runtime_error& e) {
    if (std::string_view(e.what()).rfind(kFile.string(), 0) != 0) __builtin_trap();  // names the file first
  }
  return 0;
}
