// LlamaConfig: Hugging Face config.json in and out, with every field's type and range checked
// (an error names the file and the field), and the RoPE frequencies both backends use.
#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <numbers>
#include <stdexcept>

#include "core/runtime/files.h"
#include "serving/model/llama.h"

namespace xp::serving {
namespace fs = std::filesystem;

std::set<int32_t> eos_token_ids(const fs::path& model_dir) {
  for (const char* name : {"generation_config.json", "config.json"}) {
    std::ifstream in(model_dir / name);
    if (!in) continue;
    nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("eos_token_id")) continue;
    const nlohmann::json& e = j["eos_token_id"];
    std::set<int32_t> ids;
    for (const nlohmann::json& v : e.is_array() ? e : nlohmann::json::array({e}))
      if (v.is_number_integer()) ids.insert(v.get<int32_t>());
    if (!ids.empty()) return ids;
  }
  return {};
}

LlamaConfig LlamaConfig::from_json_file(const fs::path& path) {
  std::string text;
  try {
    text = runtime::read_file(path);
  } catch (const runtime::IoError&) {
    throw std::runtime_error(fmt::format("{}: cannot read (a model folder needs config.json)", path.string()));
  }
  return from_json(text, path);
}

LlamaConfig LlamaConfig::from_json(std::string_view text, const fs::path& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(fmt::format("{}: not valid JSON: {}", path.string(), e.what()));
  }
  if (!j.is_object()) throw std::runtime_error(fmt::format("{}: not a JSON object of fields", path.string()));
  auto fail = [&](const std::string& field, const std::string& why) {
    return std::runtime_error(fmt::format("{}: field '{}': {}", path.string(), field, why));
  };
  // Typed reads that name the field: a wrong type is the file's error, never the JSON library's.
  // `parent`: the enclosing object's key, for the error's field name.
  auto positive_int = [&](const nlohmann::json& obj, const std::string& parent, const char* k, int64_t& out) {
    if (!obj[k].is_number_integer() || obj[k].get<int64_t>() <= 0)
      throw fail(parent + k, fmt::format("{} is not a positive integer", obj[k].dump()));
    out = obj[k].get<int64_t>();
  };
  // Both backends compute in f32 (RoPE frequencies from rope_theta, the norms' eps): a larger
  // value would become infinity there.
  auto positive_number = [&](const nlohmann::json& obj, const std::string& parent, const char* k, double& out) {
    if (!obj[k].is_number() || !(obj[k].get<double>() > 0) || !(obj[k].get<double>() <= std::numeric_limits<float>::max()))
      throw fail(parent + k, fmt::format("{} is not a positive number in f32's range", obj[k].dump()));
    out = obj[k].get<double>();
  };
  auto given = [&](const nlohmann::json& obj, const char* k) { return obj.contains(k) && !obj[k].is_null(); };
  const nlohmann::json& archs = j.contains("architectures") ? j["architectures"] : nlohmann::json();
  std::string arch = archs.is_array() && !archs.empty() && archs[0].is_string() ? archs[0].get<std::string>() : archs.dump();
  if (arch != "LlamaForCausalLM" && arch != "MistralForCausalLM")
    throw fail("architectures", fmt::format("'{}' is not supported (supported: LlamaForCausalLM, MistralForCausalLM)", arch));
  LlamaConfig c;
  for (auto [k, out] : {std::pair{"hidden_size", &c.hidden_size}, {"intermediate_size", &c.intermediate_size},
                        {"num_hidden_layers", &c.num_hidden_layers}, {"num_attention_heads", &c.num_attention_heads},
                        {"vocab_size", &c.vocab_size}}) {
    if (!given(j, k)) throw fail(k, "missing");
    positive_int(j, "", k, *out);
  }
  c.num_key_value_heads = c.num_attention_heads;
  if (given(j, "num_key_value_heads")) positive_int(j, "", "num_key_value_heads", c.num_key_value_heads);
  if (given(j, "max_position_embeddings")) positive_int(j, "", "max_position_embeddings", c.max_position_embeddings);
  if (given(j, "rms_norm_eps")) positive_number(j, "", "rms_norm_eps", c.rms_norm_eps);
  if (given(j, "tie_word_embeddings")) {
    if (!j["tie_word_embeddings"].is_boolean()) throw fail("tie_word_embeddings", "is not true or false");
    c.tie_word_embeddings = j["tie_word_embeddings"].get<bool>();
  }
  for (const char* k : {"torch_dtype", "dtype"})  // transformers 5 renamed it
    if (given(j, k) && j[k].is_string()) c.torch_dtype = j[k].get<std::string>();
  if (given(j, "hidden_act") && j["hidden_act"] != "silu") throw fail("hidden_act", "only silu (SwiGLU) is supported");
  if (c.hidden_size % c.num_attention_heads || c.num_attention_heads % c.num_key_value_heads)
    throw fail("num_attention_heads", "hidden_size must divide by the heads, and the heads by num_key_value_heads");
  if (c.head_dim() % 2) throw fail("num_attention_heads", fmt::format("head_dim {} is odd; RoPE rotates pairs", c.head_dim()));
  if (given(j, "head_dim") && j["head_dim"] != c.head_dim())
    throw fail("head_dim", "only head_dim = hidden_size / num_attention_heads is supported");

  // RoPE: transformers ≤ 4 writes rope_theta and rope_scaling at the top level; transformers 5
  // writes both inside rope_parameters ({"rope_type": "default"|"llama3", "rope_theta": ...}).
  // Either layout is read; a file with both must agree.
  auto read_rope = [&](const nlohmann::json& r, const std::string& in) {
    if (!r.is_object()) throw fail(in, fmt::format("{} is not an object", r.dump()));
    const nlohmann::json& type = r.contains("rope_type") ? r["rope_type"] : r.contains("type") ? r["type"] : nlohmann::json("default");
    if (type != "default" && type != "llama3")
      throw fail(in + ".rope_type", fmt::format("{} is not supported (supported: default, llama3)", type.dump()));
    const std::string at = in + ".";
    if (given(r, "rope_theta")) positive_number(r, at, "rope_theta", c.rope_theta);
    if (type != "llama3") return;
    if (!given(r, "factor")) throw fail(at + "factor", "missing (llama3 scaling needs it)");
    positive_number(r, at, "factor", c.rope_factor);
    if (given(r, "low_freq_factor")) positive_number(r, at, "low_freq_factor", c.rope_low_freq_factor);
    if (given(r, "high_freq_factor")) positive_number(r, at, "high_freq_factor", c.rope_high_freq_factor);
    if (given(r, "original_max_position_embeddings"))
      positive_int(r, at, "original_max_position_embeddings", c.rope_original_max_position);
    if (c.rope_high_freq_factor <= c.rope_low_freq_factor)
      throw fail(in, "high_freq_factor must exceed low_freq_factor (the smoothing divides by their difference)");
  };
  if (given(j, "rope_theta")) positive_number(j, "", "rope_theta", c.rope_theta);
  if (given(j, "rope_scaling")) read_rope(j["rope_scaling"], "rope_scaling");
  if (given(j, "rope_parameters")) {
    const double top_theta = c.rope_theta;
    read_rope(j["rope_parameters"], "rope_parameters");
    if (given(j, "rope_theta") && c.rope_theta != top_theta)
      throw fail("rope_parameters.rope_theta", fmt::format("{} disagrees with the top-level rope_theta {}", c.rope_theta, top_theta));
  }

  // Keys of the Llama family's configs that change the computation in ways this engine does not
  // implement: each is refused by name unless it has its neutral value, never ignored.
  auto refuse_unless = [&](const char* k, auto&& neutral, const std::string& why) {
    if (given(j, k) && !neutral(j[k])) throw fail(k, fmt::format("{} is not supported: {}", j[k].dump(), why));
  };
  auto is_false = [](const nlohmann::json& v) { return v == false; };
  refuse_unless("attention_bias", is_false, "the attention projections here have no bias terms");
  refuse_unless("mlp_bias", is_false, "the MLP projections here have no bias terms");
  refuse_unless("partial_rotary_factor", [](const nlohmann::json& v) { return v == 1 || v == 1.0; },
                "RoPE rotates the whole head here");
  refuse_unless("layer_types", [](const nlohmann::json& v) {
    if (!v.is_array()) return false;
    for (const auto& t : v) if (t != "full_attention") return false;
    return true;
  }, "every layer attends to the full context here");
  for (const char* k : {"attn_logit_softcapping", "final_logit_softcapping", "query_pre_attn_scalar", "logits_scaling",
                        "embedding_multiplier", "residual_multiplier", "attention_multiplier", "num_local_experts",
                        "num_experts", "no_rope_layers", "use_qk_norm"})
    refuse_unless(k, [](const nlohmann::json& v) { return v.is_null() || v == false; }, "not implemented by this engine");
  // A sliding window only changes attention past its length: the model serves contexts up to it
  // (an exact result), and a longer request is refused as past the context.
  const bool window_used = !given(j, "use_sliding_window") || j["use_sliding_window"] != false;
  if (given(j, "sliding_window") && window_used) {
    int64_t window = 0;
    positive_int(j, "", "sliding_window", window);
    c.max_position_embeddings = std::min(c.max_position_embeddings, window);
  }
  return c;
}

std::string LlamaConfig::to_json() const {
  nlohmann::json j = {{"architectures", {"LlamaForCausalLM"}},
                      {"model_type", "llama"},
                      {"hidden_act", "silu"},
                      {"hidden_size", hidden_size},
                      {"intermediate_size", intermediate_size},
                      {"num_hidden_layers", num_hidden_layers},
                      {"num_attention_heads", num_attention_heads},
                      {"num_key_value_heads", num_key_value_heads},
                      {"vocab_size", vocab_size},
                      {"max_position_embeddings", max_position_embeddings},
                      {"rms_norm_eps", rms_norm_eps},
                      {"rope_theta", rope_theta},
                      {"tie_word_embeddings", tie_word_embeddings},
                      {"torch_dtype", torch_dtype}};
  if (rope_factor != 1.0)
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", rope_factor},
                         {"low_freq_factor", rope_low_freq_factor},
                         {"high_freq_factor", rope_high_freq_factor},
                         {"original_max_position_embeddings", rope_original_max_position}};
  return j.dump(2) + "\n";
}

std::vector<float> LlamaConfig::rope_inverse_frequencies() const {
  int64_t d = head_dim();
  std::vector<float> f(static_cast<size_t>(d / 2));
  for (int64_t i = 0; i < d / 2; ++i)
    f[static_cast<size_t>(i)] = 1.0f / std::pow(static_cast<float>(rope_theta), static_cast<float>(2 * i) / static_cast<float>(d));
  if (rope_factor != 1.0) {  // Llama-3 frequency-dependent scaling
    double old = static_cast<double>(rope_original_max_position);
    double low_wl = old / rope_low_freq_factor, high_wl = old / rope_high_freq_factor;
    for (float& v : f) {
      double wl = 2 * std::numbers::pi / v;
      double scaled = wl > low_wl ? v / rope_factor : v;
      if (!(wl < high_wl) && !(wl > low_wl)) {
        double smooth = (old / wl - rope_low_freq_factor) / (rope_high_freq_factor - rope_low_freq_factor);
        scaled = (1 - smooth) * scaled / rope_factor + smooth * scaled;
      }
      v = static_cast<float>(scaled);
    }
  }
  return f;
}

}  // namespace xp::serving
