// The client side of Metron (docs/serving_text.md): one streamed request to any
// OpenAI-compatible endpoint (exp serve, vLLM, SGLang, llama.cpp's server, TGI, a hosted API),
// with the arrival time of every server-sent event, as Metron measures live systems.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace xp::serving {

struct Endpoint {
  std::string base;     // scheme://host[:port], e.g. http://127.0.0.1:8000
  std::string prefix;   // the path before /completions, e.g. /v1
  std::string api_key;  // sent as "Authorization: Bearer …"; never logged
  double timeout_s = 60;

  // "http://127.0.0.1:8000/v1" -> base + prefix; throws std::invalid_argument naming what is wrong.
  static Endpoint parse(const std::string& url);
};

struct StreamedResponse {
  bool ok = false;
  std::string error;                 // why not ok: connection, HTTP status + body, timeout, truncated stream
  int http_status = 0;
  std::vector<double> token_times;   // seconds after the request was sent, one per event carrying text
  std::string text;
  std::string finish_reason;
  int64_t prompt_tokens = -1, completion_tokens = -1;  // from the usage chunk, when the server sends one
  double client_s = 0;               // time spent parsing the stream (client overhead, not the server's)
};

// GET {prefix}/models: the first model's id ("" and `error` set when the endpoint does not answer).
std::string first_model(const Endpoint& ep, std::string* error);

// POST {prefix}/completions (or /chat/completions when `chat`) with `body` (stream is set to
// true, and stream_options.include_usage). Returns after the stream ends, fails or times out.
StreamedResponse stream_completion(const Endpoint& ep, nlohmann::json body, bool chat);

}  // namespace xp::serving
