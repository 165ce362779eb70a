#include "serving/client/openai_client.h"

#include <fmt/format.h>

#include <chrono>
#include <regex>
#include <stdexcept>

// After nlohmann and fmt: httplib pulls in <resolv.h>, whose `_res` macro breaks Eigen elsewhere.
#include <httplib.h>

namespace xp::serving {
namespace {

using Clock = std::chrono::steady_clock;

httplib::Client client(const Endpoint& ep) {
  httplib::Client c(ep.base);
  const auto t = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::duration<double>(ep.timeout_s));
  c.set_connection_timeout(std::chrono::duration_cast<std::chrono::seconds>(t).count() + 1, 0);
  c.set_read_timeout(t.count() / 1000000, t.count() % 1000000);
  if (!ep.api_key.empty()) c.set_bearer_token_auth(ep.api_key);
  return c;
}

}  // namespace

Endpoint Endpoint::parse(const std::string& url) {
  std::smatch m;
  if (!std::regex_match(url, m, std::regex(R"((https?://[^/\s]+)(/[^\s]*)?)")))
    throw std::invalid_argument(fmt::format("\"{}\" is not an http(s) URL like http://127.0.0.1:8000/v1", url));
  Endpoint ep;
  ep.base = m[1];
  ep.prefix = m[2].matched ? m[2].str() : "";
  while (ep.prefix.ends_with('/')) ep.prefix.pop_back();
  return ep;
}

std::string first_model(const Endpoint& ep, std::string* error) {
  auto c = client(ep);
  auto r = c.Get(ep.prefix + "/models");
  if (!r) return *error = fmt::format("GET {}{}/models: {}", ep.base, ep.prefix, httplib::to_string(r.error())), "";
  if (r->status != 200) return *error = fmt::format("GET {}{}/models: HTTP {}", ep.base, ep.prefix, r->status), "";
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  if (j.is_discarded() || !j.contains("data") || !j["data"].is_array() || j["data"].empty() || !j["data"][0].contains("id"))
    return *error = fmt::format("GET {}{}/models: no model listed", ep.base, ep.prefix), "";
  return j["data"][0]["id"].get<std::string>();
}

StreamedResponse stream_completion(const Endpoint& ep, nlohmann::json body, bool chat) {
  StreamedResponse out;
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  auto c = client(ep);
  std::string buffer, error_body;
  bool done = false;
  const Clock::time_point sent = Clock::now();
  // Each SSE event is timestamped as its bytes arrive, before it is parsed: the parsing is
  // client overhead that must not move the measured times.
  auto on_event = [&](const std::string& data, double t) {
    if (data == "[DONE]") return void(done = true);
    auto j = nlohmann::json::parse(data, nullptr, false);
    if (j.is_discarded()) return void(out.error = "a stream event is not JSON: " + data.substr(0, 200));
    if (j.contains("usage") && j["usage"].is_object()) {
      out.prompt_tokens = j["usage"].value("prompt_tokens", int64_t{-1});
      out.completion_tokens = j["usage"].value("completion_tokens", int64_t{-1});
    }
    if (!j.contains("choices") || !j["choices"].is_array() || j["choices"].empty()) return;
    const auto& ch = j["choices"][0];
    const nlohmann::json* piece = chat ? (ch.contains("delta") && ch["delta"].contains("content") ? &ch["delta"]["content"] : nullptr)
                                       : (ch.contains("text") ? &ch["text"] : nullptr);
    if (piece && piece->is_string()) {
      out.text += piece->get<std::string>();
      out.token_times.push_back(t);
    }
    if (ch.contains("finish_reason") && ch["finish_reason"].is_string()) out.finish_reason = ch["finish_reason"];
  };
  httplib::Request req;
  req.method = "POST";
  req.path = ep.prefix + (chat ? "/chat/completions" : "/completions");
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.set_header("Accept", "text/event-stream");
  req.response_handler = [&](const httplib::Response& r) {
    out.http_status = r.status;
    return true;
  };
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    const double t = std::chrono::duration<double>(Clock::now() - sent).count();
    if (out.http_status != 200) {
      error_body.append(data, n);
      return error_body.size() < 65536;
    }
    const Clock::time_point parse_start = Clock::now();
    buffer.append(data, n);
    for (size_t end; (end = buffer.find("\n\n")) != std::string::npos;) {
      std::string event = buffer.substr(0, end);
      buffer.erase(0, end + 2);
      for (size_t pos = 0; pos < event.size();) {
        size_t nl = event.find('\n', pos);
        std::string line = event.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
        if (line.rfind("data:", 0) == 0) on_event(line.substr(line.size() > 5 && line[5] == ' ' ? 6 : 5), t);
        pos = nl == std::string::npos ? event.size() : nl + 1;
      }
    }
    out.client_s += std::chrono::duration<double>(Clock::now() - parse_start).count();
    return true;
  };
  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  const bool sent_ok = c.send(req, res, err);
  if (!sent_ok && out.http_status == 0) {
    out.error = fmt::format("{}{}: {}", ep.base, req.path, httplib::to_string(err));
  } else if (out.http_status != 200) {
    auto j = nlohmann::json::parse(error_body, nullptr, false);
    std::string msg = !j.is_discarded() && j.contains("error") && j["error"].is_object() ? j["error"].value("message", error_body)
                                                                                         : error_body.substr(0, 300);
    out.error = fmt::format("HTTP {}: {}", out.http_status, msg);
  } else if (!out.error.empty()) {
  } else if (!done) {
    out.error = sent_ok ? "the stream ended without [DONE] (truncated)" : fmt::format("the stream broke: {}", httplib::to_string(err));
  } else {
    out.ok = true;
  }
  return out;
}

}  // namespace xp::serving
