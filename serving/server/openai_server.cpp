#include "serving/server/openai_server.h"

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "core/runtime/logging.h"
#include "serving/engine/engine.h"
#include "serving/text/tokenizer.h"
// After Eigen (through engine.h): httplib pulls in <resolv.h>, whose `_res` macro breaks Eigen.
#include <httplib.h>

namespace xp::serving {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

// An OpenAI error object with its HTTP status.
struct ApiError {
  int status;
  std::string message, param, type = "invalid_request_error";
};

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  json err = {{"message", e.message}, {"type", e.type}, {"param", e.param.empty() ? json() : json(e.param)}, {"code", json()}};
  res.set_content(json{{"error", err}}.dump(), "application/json");
}

// The checkpoint's end-of-sequence ids, else the tokenizer's EOS.
std::set<int32_t> eos_ids(const fs::path& dir, const Tokenizer& tok) {
  std::set<int32_t> ids = eos_token_ids(dir);
  if (ids.empty() && tok.eos_id()) ids.insert(*tok.eos_id());
  return ids;
}

// What a handler thread waits on: the text pieces of its request, one per sampled token.
struct Stream {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::string> pieces;
  bool done = false;
  std::string finish_reason;
  int64_t prompt_tokens = 0, completion_tokens = 0;
  std::atomic<bool> cancelled{false};  // the client left

  void push(std::string piece, const std::string& finish = "") {
    {
      std::lock_guard lock(mu);
      pieces.push_back(std::move(piece));
      if (!finish.empty()) done = true, finish_reason = finish;
    }
    cv.notify_all();
  }
  void end(const std::string& finish) {
    {
      std::lock_guard lock(mu);
      done = true;
      finish_reason = finish;
    }
    cv.notify_all();
  }
};

// A validated request, tokenised, on its way to the engine thread.
struct Submission {
  uint64_t id;
  std::vector<int32_t> prompt;
  int64_t max_tokens;
  SamplingParams sampling;
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;
  bool ignore_eos;
  std::shared_ptr<Stream> stream;
};

// A request inside the engine: turns its tokens into text and decides when it ends.
struct Live {
  Submission sub;
  StreamDecoder decoder;
  std::string held;  // decoded text not sent yet: it may be the start of a stop string
  size_t hold_back = 0;
};

// Longest prefix of `s` that ends on a UTF-8 character boundary, at most `n` bytes.
size_t utf8_cut(const std::string& s, size_t n) {
  while (n > 0 && n < s.size() && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return n;
}

}  // namespace

struct OpenAiServer::Impl {
  ServerOptions opt;
  std::unique_ptr<LlamaModel> model;
  std::unique_ptr<Tokenizer> tok;
  std::set<int32_t> eos;
  LlamaConfig cfg;
  httplib::Server http;
  int bound_port = 0;

  std::mutex mu;  // guards inbox, draining, drain_deadline
  std::condition_variable wake;
  std::deque<Submission> inbox;
  bool draining = false;
  Clock::time_point drain_deadline;
  std::atomic<uint64_t> next_id{0};
  std::atomic<int64_t> in_flight{0};
  std::atomic<int64_t> kv_used{0}, kv_total{0}, served{0}, cancelled{0}, steps{0}, tokens{0};
  // Engine thread time: inside Engine::step() (the model), and outside it (admitting requests,
  // detokenising, stop checks, handing tokens to the streams) — the server's own overhead.
  std::atomic<double> step_s{0}, loop_s{0};
  std::thread engine_thread;

  explicit Impl(ServerOptions o) : opt(std::move(o)) {
    if (opt.model_name.empty()) opt.model_name = fs::absolute(opt.model_dir).lexically_normal().filename().string();
    cfg = LlamaConfig::from_json_file(opt.model_dir / "config.json");
    tok = Tokenizer::from_dir(opt.model_dir);
    if (tok->vocab_size() > cfg.vocab_size)
      throw std::runtime_error(fmt::format("{}: the tokenizer has {} tokens but the model's vocab_size is {}",
                                           opt.model_dir.string(), tok->vocab_size(), cfg.vocab_size));
    eos = eos_ids(opt.model_dir, *tok);
    model = LlamaModel::load(opt.model_dir);
    opt.scheduler.max_model_len = std::min(opt.scheduler.max_model_len, cfg.max_position_embeddings);
    const int threads = opt.max_connections;
    http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
    http.set_keep_alive_max_count(1000);
    routes();
    // cpp-httplib listens with a backlog of 5 (compiled into Debian's library): 64 clients
    // connecting at once overflow it and some connections are lost. Listening again on the same
    // socket raises the backlog; the socket option hook is where the library shows us its socket.
    int listen_fd = -1;
    http.set_socket_options([&listen_fd](socket_t sock) {
      listen_fd = sock;
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    bound_port = opt.port == 0 ? http.bind_to_any_port(opt.host) : (http.bind_to_port(opt.host, opt.port) ? opt.port : -1);
    if (bound_port < 0)
      throw std::runtime_error(fmt::format("cannot listen on {}:{} (in use, or not an address of this machine)", opt.host, opt.port));
    if (listen_fd >= 0) ::listen(listen_fd, SOMAXCONN);
    http.set_socket_options([](socket_t sock) {  // connections: as the library's default
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
  }

  // ---- HTTP side -------------------------------------------------------------------------------

  void routes() {
    http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
      std::lock_guard lock(mu);
      res.status = draining ? 503 : 200;
      res.set_content(draining ? "draining\n" : "ok\n", "text/plain");
    });
    // Prometheus text format, as vLLM's /metrics; what tests and operators watch.
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(fmt::format("exp_requests_in_flight {}\nexp_requests_finished_total {}\nexp_requests_cancelled_total {}\n"
                                  "exp_kv_blocks_used {}\nexp_kv_blocks_total {}\nexp_engine_steps_total {}\n"
                                  "exp_tokens_total {}\nexp_engine_step_seconds_total {:.6f}\nexp_server_loop_seconds_total {:.6f}\n",
                                  in_flight.load(), served.load(), cancelled.load(), kv_used.load(), kv_total.load(),
                                  steps.load(), tokens.load(), step_s.load(), loop_s.load()),
                      "text/plain; version=0.0.4");
    });
    http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
      json m = {{"id", opt.model_name}, {"object", "model"}, {"created", 0}, {"owned_by", "exp"},
                {"max_model_len", cfg.max_position_embeddings}};
      res.set_content(json{{"object", "list"}, {"data", json::array({m})}}.dump(), "application/json");
    });
    http.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) { handle(req, res, false); });
    http.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) { handle(req, res, true); });
    http.set_error_handler([](const httplib::Request&, httplib::Response& res) {
      if (res.body.empty()) send_error(res, {res.status, fmt::format("no such route ({})", res.status), ""});
    });
  }

  // Parses and checks the body; throws ApiError naming the field.
  Submission parse(const std::string& body, bool chat, bool& stream, bool& include_usage) {
    json j = json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw ApiError{400, "the body is not a JSON object", ""};
    auto bad = [](const std::string& field, const std::string& why) { return ApiError{400, fmt::format("{}: {}", field, why), field}; };
    if (j.contains("model") && !(j["model"].is_string() && j["model"].get<std::string>() == opt.model_name))
      throw ApiError{404, fmt::format("model {} is not served here (this server serves \"{}\")", j["model"].dump(), opt.model_name),
                     "model", "not_found_error"};
    Submission s;
    s.stream = std::make_shared<Stream>();
    if (chat) {
      if (!j.contains("messages") || !j["messages"].is_array() || j["messages"].empty())
        throw bad("messages", "must be a non-empty list of {\"role\", \"content\"}");
      std::vector<ChatMessage> msgs;
      for (const json& m : j["messages"]) {
        if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") || !m["content"].is_string())
          throw bad("messages", "each message needs a string \"role\" and a string \"content\"");
        const std::string role = m["role"];
        if (role != "system" && role != "user" && role != "assistant")
          throw bad("messages", fmt::format("role \"{}\" is not system, user or assistant", role));
        msgs.push_back({role, m["content"]});
      }
      s.prompt = tok->encode(render_chat(*tok, msgs), true);
    } else {
      if (!j.contains("prompt")) throw bad("prompt", "is required");
      const json& p = j["prompt"];
      if (p.is_string()) {
        s.prompt = tok->encode(p.get<std::string>(), true);
      } else if (p.is_array() && !p.empty() && std::all_of(p.begin(), p.end(), [](const json& t) { return t.is_number_integer(); })) {
        for (const json& t : p) {
          const auto v = t.get<int64_t>();
          if (v < 0 || v >= cfg.vocab_size) throw bad("prompt", fmt::format("token id {} is outside the vocabulary [0, {})", v, cfg.vocab_size));
          s.prompt.push_back(static_cast<int32_t>(v));
        }
      } else {
        throw bad("prompt", "must be a string or a list of token ids (one prompt per request)");
      }
    }
    if (s.prompt.empty()) throw bad(chat ? "messages" : "prompt", "is empty");
    auto number = [&](const char* key, double lo, double hi, double dflt) {
      if (!j.contains(key) || j[key].is_null()) return dflt;
      if (!j[key].is_number() || j[key].get<double>() < lo || j[key].get<double>() > hi)
        throw bad(key, fmt::format("{} is not a number in [{:g}, {:g}]", j[key].dump(), lo, hi));
      return j[key].get<double>();
    };
    auto flag = [&](const char* key) {
      if (!j.contains(key) || j[key].is_null()) return false;
      if (!j[key].is_boolean()) throw bad(key, fmt::format("{} is not true or false", j[key].dump()));
      return j[key].get<bool>();
    };
    const int64_t prompt_len = static_cast<int64_t>(s.prompt.size());
    const int64_t room = cfg.max_position_embeddings - prompt_len;
    if (room < 1)
      throw ApiError{413, fmt::format("the prompt has {} tokens; the model's context is {}", prompt_len, cfg.max_position_embeddings),
                     chat ? "messages" : "prompt"};
    const char* max_key = j.contains("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    if (j.contains(max_key) && !j[max_key].is_null()) {
      if (!j[max_key].is_number_integer() || j[max_key].get<int64_t>() < 1)
        throw bad(max_key, fmt::format("{} is not a positive integer", j[max_key].dump()));
      s.max_tokens = j[max_key].get<int64_t>();
      if (s.max_tokens > room)
        throw bad(max_key, fmt::format("{} prompt + {} output tokens exceed the model's context of {}", prompt_len, s.max_tokens,
                                       cfg.max_position_embeddings));
    } else {
      s.max_tokens = chat ? room : std::min(opt.default_max_tokens, room);
    }
    if (j.contains("n") && !(j["n"].is_number_integer() && j["n"].get<int64_t>() == 1)) throw bad("n", "only n = 1 is served");
    s.sampling.temperature = number("temperature", 0, 2, 1.0);
    s.sampling.top_p = number("top_p", 0, 1, 1.0);
    if (s.sampling.top_p <= 0) throw bad("top_p", "must be above 0");
    s.sampling.top_k = static_cast<int64_t>(number("top_k", -1, 1e9, 0));
    if (s.sampling.top_k < 0) s.sampling.top_k = 0;  // vLLM's -1: all
    if (j.contains("seed") && !j["seed"].is_null()) {
      if (!j["seed"].is_number_integer()) throw bad("seed", fmt::format("{} is not an integer", j["seed"].dump()));
      s.seed = static_cast<uint64_t>(j["seed"].get<int64_t>());
    }
    if (j.contains("stop") && !j["stop"].is_null()) {
      const json& st = j["stop"];
      for (const json& v : st.is_array() ? st : json::array({st})) {
        if (!v.is_string() || v.get<std::string>().empty()) throw bad("stop", "must be a non-empty string or a list of them");
        s.stop.push_back(v);
      }
      if (s.stop.size() > 4) throw bad("stop", "at most 4 stop strings");
    }
    s.ignore_eos = flag("ignore_eos");
    stream = flag("stream");
    include_usage = j.contains("stream_options") && j["stream_options"].is_object() &&
                    j["stream_options"].value("include_usage", false);
    s.stream->prompt_tokens = prompt_len;
    return s;
  }

  void handle(const httplib::Request& req, httplib::Response& res, bool chat) {
    bool stream = false, include_usage = false;
    Submission sub;
    try {
      sub = parse(req.body, chat, stream, include_usage);
    } catch (const ApiError& e) {
      return send_error(res, e);
    }
    const uint64_t request_id = next_id++;
    sub.id = request_id;
    std::shared_ptr<Stream> st = sub.stream;
    {
      std::lock_guard lock(mu);
      if (draining) return send_error(res, {503, "the server is shutting down", "", "server_error"});
      ++in_flight;
      inbox.push_back(std::move(sub));
    }
    wake.notify_all();
    const std::string id = fmt::format("{}-{}", chat ? "chatcmpl" : "cmpl", request_id);
    const auto created = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    auto chunk = [=, this](const std::string& text, const std::string& finish, bool first) {
      json choice = {{"index", 0}, {"finish_reason", finish.empty() ? json() : json(finish)}};
      if (chat) {
        json delta = {{"content", text}};
        if (first) delta["role"] = "assistant";
        choice["delta"] = delta;
      } else {
        choice["text"] = text;
        choice["logprobs"] = json();
      }
      return json{{"id", id}, {"object", chat ? "chat.completion.chunk" : "text_completion"}, {"created", created},
                  {"model", opt.model_name}, {"choices", json::array({choice})}};
    };
    auto usage = [](const Stream& s) {
      return json{{"prompt_tokens", s.prompt_tokens}, {"completion_tokens", s.completion_tokens},
                  {"total_tokens", s.prompt_tokens + s.completion_tokens}};
    };
    if (!stream) {
      std::string text;
      std::unique_lock lock(st->mu);
      st->cv.wait(lock, [&] { return st->done; });
      for (const std::string& p : st->pieces) text += p;
      json body = chunk(text, st->finish_reason, true);
      body["object"] = chat ? "chat.completion" : "text_completion";
      if (chat) body["choices"][0]["message"] = {{"role", "assistant"}, {"content", text}}, body["choices"][0].erase("delta");
      body["usage"] = usage(*st);
      res.set_content(body.dump(), "application/json");
      return;
    }
    auto sent = std::make_shared<size_t>(0);
    res.set_chunked_content_provider(
        "text/event-stream",
        [=](size_t, httplib::DataSink& sink) {
          std::unique_lock lock(st->mu);
          st->cv.wait_for(lock, std::chrono::milliseconds(200), [&] { return st->pieces.size() > *sent || st->done; });
          std::string out;
          const size_t total = st->pieces.size();
          for (; *sent < total; ++*sent) {
            const bool last = st->done && *sent + 1 == total;
            out += "data: " + chunk(st->pieces[*sent], last ? st->finish_reason : "", *sent == 0).dump() + "\n\n";
          }
          const bool done = st->done && *sent == total;
          if (done && total == 0) out += "data: " + chunk("", st->finish_reason, true).dump() + "\n\n";
          if (done && include_usage) {
            json u = chunk("", "", false);
            u["choices"] = json::array();
            u["usage"] = usage(*st);
            out += "data: " + u.dump() + "\n\n";
          }
          lock.unlock();
          if (done) out += "data: [DONE]\n\n";
          if (!out.empty() && !sink.write(out.data(), out.size())) {
            st->cancelled = true;
            return false;
          }
          if (!sink.is_writable()) {
            st->cancelled = true;
            return false;
          }
          if (done) sink.done();
          return true;
        },
        [st](bool success) {
          if (!success) st->cancelled = true;
        });
  }

  // ---- engine side -----------------------------------------------------------------------------

  // Runs the engine until drained; if it fails, every waiting client hears "abort" first.
  void engine_loop() {
    std::map<uint64_t, Live> live;
    try {
      serve_requests(live);
    } catch (...) {
      std::lock_guard lock(mu);
      draining = true;
      for (auto& [id, l] : live) l.sub.stream->end("abort");
      for (Submission& s : inbox) s.stream->end("abort");
      inbox.clear();
      throw;
    }
  }

  void serve_requests(std::map<uint64_t, Live>& live) {
    std::unique_ptr<ModelRunner> runner =
        opt.device == "cuda" ? cuda_runner(*model, opt.kv_blocks, opt.scheduler.block_size)
                             : cpu_runner(*model, opt.kv_blocks, opt.scheduler.block_size);
    Engine engine(std::move(runner), opt.scheduler, opt.kv_blocks, SamplingParams{}, opt.seed, nullptr);
    kv_total = engine.kv_blocks_total();
    // Counted before its client hears the end, so /metrics never lags what a client has seen.
    auto retire = [&](std::map<uint64_t, Live>::iterator it, const std::string& reason) {
      ++(reason == "abort" ? cancelled : served);
      --in_flight;
      std::shared_ptr<Stream> stream = it->second.sub.stream;
      live.erase(it);
      return stream;
    };
    auto end = [&](uint64_t id, const std::string& reason) {
      auto it = live.find(id);
      if (it != live.end()) retire(it, reason)->end(reason);
    };
    for (;;) {
      std::deque<Submission> arrived;
      bool past_deadline = false;
      {
        std::unique_lock lock(mu);
        if (!engine.has_work() && inbox.empty()) {
          if (draining && live.empty()) break;
          wake.wait_for(lock, std::chrono::milliseconds(50));
        }
        arrived.swap(inbox);
        past_deadline = draining && Clock::now() > drain_deadline;
      }
      for (Submission& s : arrived) {
        Request r;
        r.id = s.id;
        r.decode_tokens = s.max_tokens;
        const std::string why = engine.submit(r, s.prompt, s.sampling, s.seed);
        if (!why.empty()) {  // parse() checks all unservable() does; this is a backstop
          runtime::logger()->error("request {}: {}", s.id, why);
          s.stream->end("abort");
          --in_flight;
          continue;
        }
        size_t hold = 0;
        for (const std::string& stop : s.stop) hold = std::max(hold, stop.size() - 1);
        StreamDecoder decoder(*tok, s.prompt);
        const uint64_t id = s.id;
        live.emplace(id, Live{std::move(s), std::move(decoder), "", hold});
      }
      // Clients that left, and everything once the shutdown grace is over.
      for (auto it = live.begin(); it != live.end();) {
        const uint64_t id = (it++)->first;
        if (live.at(id).sub.stream->cancelled || past_deadline) {
          engine.finish_early(id);
          end(id, "abort");
        }
      }
      const Clock::time_point t0 = Clock::now();
      Engine::StepEvents ev = engine.step();
      const Clock::time_point t1 = Clock::now();
      if (!ev.tokens.empty()) {
        ++steps;
        tokens += static_cast<int64_t>(ev.tokens.size());
        step_s = step_s + std::chrono::duration<double>(t1 - t0).count();
      }
      for (const auto& [id, token] : ev.tokens) {
        auto it = live.find(id);
        if (it == live.end()) continue;
        Live& l = it->second;
        Stream& st = *l.sub.stream;
        ++st.completion_tokens;
        const bool eos_hit = !l.sub.ignore_eos && eos.count(token);
        std::string finish = eos_hit ? "stop" : st.completion_tokens >= l.sub.max_tokens ? "length" : "";
        if (!eos_hit) l.held += l.decoder.push(token);
        if (finish == "length") l.held += l.decoder.flush();
        for (const std::string& stop : l.sub.stop) {
          const size_t at = l.held.find(stop);
          if (at != std::string::npos) l.held.resize(at), finish = "stop";
        }
        size_t send = finish.empty() ? utf8_cut(l.held, l.held.size() > l.hold_back ? l.held.size() - l.hold_back : 0) : l.held.size();
        std::string piece = l.held.substr(0, send);
        l.held.erase(0, send);
        if (!finish.empty()) {
          if (finish == "stop") engine.finish_early(id);
          retire(it, finish)->push(std::move(piece), finish);
        } else {
          st.push(std::move(piece));
        }
      }
      for (const auto& f : ev.finished) end(f.first, "length");  // e.g. the scheduler ignored it
      kv_used = engine.kv_blocks_used();
      if (!ev.tokens.empty()) loop_s = loop_s + std::chrono::duration<double>(Clock::now() - t1).count();
    }
  }

  void stop() {
    {
      std::lock_guard lock(mu);
      if (draining) return;
      draining = true;
      drain_deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(opt.shutdown_grace_s));
    }
    wake.notify_all();
  }
};

OpenAiServer::OpenAiServer(ServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
OpenAiServer::~OpenAiServer() {
  stop();
  if (impl_->engine_thread.joinable()) impl_->engine_thread.join();
}

int OpenAiServer::port() const { return impl_->bound_port; }
const std::string& OpenAiServer::model_name() const { return impl_->opt.model_name; }

void OpenAiServer::run() {
  Impl& s = *impl_;
  std::exception_ptr engine_error;
  s.engine_thread = std::thread([&] {
    try {
      s.engine_loop();
    } catch (...) {
      engine_error = std::current_exception();
      runtime::logger()->error("the engine stopped; the server stops too");
      s.stop();
    }
    // listen() may not have started yet (an engine that failed at once): stop() would miss it.
    for (int i = 0; i < 5000 && !s.http.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    s.http.stop();  // in-flight handlers have their last event; they finish writing, then listen returns
  });
  s.http.listen_after_bind();
  s.engine_thread.join();
  if (engine_error) std::rethrow_exception(engine_error);
}

void OpenAiServer::stop() { impl_->stop(); }

}  // namespace xp::serving
