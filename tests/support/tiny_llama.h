// The small Llama the model and engine tests share: two layers, grouped-query attention (4 query
// heads over 2 KV heads), a prime vocabulary so no size lines up with another by accident.
#pragma once
#include <cstdint>

#include "serving/model/llama.h"

namespace xp::testing {

inline serving::LlamaConfig tiny_llama(int64_t max_positions) {
  serving::LlamaConfig c;
  c.hidden_size = 64;
  c.intermediate_size = 128;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.vocab_size = 97;
  c.max_position_embeddings = max_positions;
  c.rope_theta = 10000;
  return c;
}

}  // namespace xp::testing
