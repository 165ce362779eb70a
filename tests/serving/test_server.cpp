// `exp serve`'s server, started in-process on a free loopback port and driven over HTTP with
// cpp-httplib's client (and, in ServeCli, the real binary driven with curl).
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "core/results/results_file.h"
#include "serving/model/llama.h"
#include "serving/server/openai_server.h"
// After Eigen: httplib pulls in <resolv.h>, whose `_res` macro breaks Eigen's headers.
#include <httplib.h>

namespace xp::serving {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A tiny random Llama with a real checkpoint's tokenizer (Mistral/Llama-2's, 32000 tokens).
fs::path tiny_model() {
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / fmt::format("exp_server_model_{}", getpid());
    LlamaConfig c;
    c.hidden_size = 64, c.intermediate_size = 128, c.num_hidden_layers = 2, c.num_attention_heads = 4;
    c.num_key_value_heads = 2, c.vocab_size = 32000, c.max_position_embeddings = 512;
    write_random_llama(d, c, 7);
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
      fs::copy_file(fs::path(EXP_BINARY_DIR) / "tokenizer_reference/llama2" / f, d / f, fs::copy_options::overwrite_existing);
    return d;
  }();
  return dir;
}

class Served {
 public:
  explicit Served(ServerOptions o = {}) {
    if (o.model_dir.empty()) o.model_dir = tiny_model();
    o.port = 0;
    server_ = std::make_unique<OpenAiServer>(o);
    done_ = std::async(std::launch::async, [this] { server_->run(); });
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    client_->set_read_timeout(60);
    for (int i = 0; i < 500 && !client_->Get("/health"); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ~Served() {
    server_->stop();
    done_.wait();
  }
  httplib::Client& client() { return *client_; }
  OpenAiServer& server() { return *server_; }
  std::future<void>& done() { return done_; }
  // A client of its own: httplib's Client serialises its requests, and a stream may be open.
  int64_t metric(const std::string& name) {
    httplib::Client c("127.0.0.1", server_->port());
    auto r = c.Get("/metrics");
    std::smatch m;
    std::string body = r ? r->body : "";
    if (!std::regex_search(body, m, std::regex(name + " (\\d+)"))) return -1;
    return std::stoll(m[1]);
  }
  json post(const std::string& path, const json& body, int* status = nullptr) {
    auto r = client_->Post(path, body.dump(), "application/json");
    if (!r) throw std::runtime_error("no response");
    if (status) *status = r->status;
    return json::parse(r->body);
  }
  // The `data:` payloads of a streamed response, [DONE] included.
  std::vector<std::string> stream(const std::string& path, const json& body) {
    auto r = client_->Post(path, body.dump(), "application/json");
    if (!r) throw std::runtime_error("no response");
    EXPECT_EQ(r->get_header_value("Content-Type"), "text/event-stream");
    std::vector<std::string> events;
    std::istringstream in(r->body);
    for (std::string line; std::getline(in, line);)
      if (line.rfind("data: ", 0) == 0) events.push_back(line.substr(6));
    return events;
  }

 private:
  std::unique_ptr<OpenAiServer> server_;
  std::future<void> done_;
  std::unique_ptr<httplib::Client> client_;
};

std::string text_of(const json& completion) { return completion["choices"][0]["text"]; }

TEST(Server, StreamsOneEventPerTokenThenDone) {
  Served s;
  const json req = {{"prompt", "The capital of France is"}, {"max_tokens", 12}, {"temperature", 0}, {"ignore_eos", true}};
  json plain = s.post("/v1/completions", req);
  EXPECT_EQ(plain["usage"]["completion_tokens"], 12);
  EXPECT_EQ(plain["choices"][0]["finish_reason"], "length");
  json streamed_req = req;
  streamed_req["stream"] = true;
  auto events = s.stream("/v1/completions", streamed_req);
  ASSERT_EQ(events.size(), 13u);
  EXPECT_EQ(events.back(), "[DONE]");
  std::string text;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    json e = json::parse(events[i]);
    text += e["choices"][0]["text"].get<std::string>();
    EXPECT_EQ(e["choices"][0]["finish_reason"].is_null(), i + 2 < events.size());
  }
  EXPECT_EQ(text, text_of(plain));  // greedy: the same tokens either way
}

TEST(Server, ChatStreamsDeltasWithRoleAndUsage) {
  Served s;
  auto events = s.stream("/v1/chat/completions", {{"messages", {{{"role", "user"}, {"content", "Hi"}}}},
                                                  {"max_tokens", 3}, {"stream", true}, {"ignore_eos", true},
                                                  {"stream_options", {{"include_usage", true}}}});
  ASSERT_EQ(events.size(), 5u);  // 3 tokens, usage, [DONE]
  EXPECT_EQ(json::parse(events[0])["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(json::parse(events[0])["object"], "chat.completion.chunk");
  EXPECT_EQ(json::parse(events[3])["usage"]["completion_tokens"], 3);
}

TEST(Server, SeedMakesSamplingRepeatable) {
  Served s;
  json req = {{"prompt", "Once upon a time"}, {"max_tokens", 10}, {"temperature", 1.0}, {"seed", 42}, {"ignore_eos", true}};
  const std::string a = text_of(s.post("/v1/completions", req));
  EXPECT_EQ(text_of(s.post("/v1/completions", req)), a);
  req["seed"] = 43;
  EXPECT_NE(text_of(s.post("/v1/completions", req)), a);
}

TEST(Server, StopsAtTheCheckpointsEosUnlessIgnoreEos) {
  // Make the token this model greedily emits first its end-of-sequence id.
  const fs::path dir = fs::temp_directory_path() / fmt::format("exp_server_eos_{}", getpid());
  fs::create_directories(dir);
  for (const auto& f : fs::directory_iterator(tiny_model())) fs::copy_file(f.path(), dir / f.path().filename());
  const json req = {{"prompt", {1, 415, 5565}}, {"max_tokens", 5}, {"temperature", 0}};
  ServerOptions o;
  o.model_dir = dir;
  int32_t first = -1;
  {
    // The first greedy token, found through its text (the response carries text, not ids).
    Served s(o);
    json one = req;
    one["max_tokens"] = 1;
    const std::string t = text_of(s.post("/v1/completions", one));
    std::ifstream in(dir / "tokenizer.json");
    json vocab = json::parse(in)["model"]["vocab"];
    std::string piece = t;
    for (size_t p; (p = piece.find(' ')) != std::string::npos;) piece.replace(p, 1, "\xE2\x96\x81");
    ASSERT_TRUE(vocab.contains(piece)) << "first token text " << t;
    first = vocab[piece];
  }
  std::ofstream(dir / "generation_config.json") << json{{"eos_token_id", {2, first}}}.dump();
  Served s(o);
  json r = s.post("/v1/completions", req);
  EXPECT_EQ(r["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(r["usage"]["completion_tokens"], 1);
  EXPECT_EQ(text_of(r), "");  // the end-of-sequence token is not text
  json ignore = req;
  ignore["ignore_eos"] = true;
  EXPECT_EQ(s.post("/v1/completions", ignore)["usage"]["completion_tokens"], 5);
  fs::remove_all(dir);
}

TEST(Server, StopStringEndsTheRequestAndIsNotReturned) {
  Served s;
  json req = {{"prompt", "Tell me a story"}, {"max_tokens", 24}, {"temperature", 0}, {"ignore_eos", true}};
  const std::string full = text_of(s.post("/v1/completions", req));
  ASSERT_GT(full.size(), 12u);
  const std::string stop = full.substr(full.size() / 2, 3);
  const std::string expect = full.substr(0, full.find(stop));
  req["stop"] = stop;
  json r = s.post("/v1/completions", req);
  EXPECT_EQ(text_of(r), expect);
  EXPECT_EQ(r["choices"][0]["finish_reason"], "stop");
  EXPECT_LT(r["usage"]["completion_tokens"], 24);
  req["stream"] = true;  // streamed, the held-back text is the same
  std::string text;
  for (const std::string& e : s.stream("/v1/completions", req))
    if (e != "[DONE]") text += json::parse(e)["choices"][0]["text"].get<std::string>();
  EXPECT_EQ(text, expect);
}

TEST(Server, BadRequestsGetErrorsNamingTheField) {
  Served s;
  struct Case {
    json body;
    int status;
    std::string param;
  };
  const std::vector<Case> cases = {
      {{{"prompt", "x"}, {"max_tokens", 0}}, 400, "max_tokens"},
      {{{"prompt", "x"}, {"max_tokens", "ten"}}, 400, "max_tokens"},
      {{{"prompt", "x"}, {"max_tokens", 600}}, 400, "max_tokens"},
      {{{"prompt", "x"}, {"temperature", 5}}, 400, "temperature"},
      {{{"prompt", "x"}, {"top_p", 0}}, 400, "top_p"},
      {{{"prompt", "x"}, {"stop", {1, 2}}}, 400, "stop"},
      {{{"prompt", "x"}, {"stream", "yes"}}, 400, "stream"},
      {{{"prompt", {1, 99999}}}, 400, "prompt"},
      {{{"prompt", {"a", "b"}}}, 400, "prompt"},
      {{{"max_tokens", 3}}, 400, "prompt"},
      {{{"prompt", "x"}, {"n", 2}}, 400, "n"},
      {{{"prompt", "x"}, {"model", "other"}}, 404, "model"},
      {{{"prompt", [] {
         std::string long_prompt;
         for (int i = 0; i < 600; ++i) long_prompt += "word ";
         return long_prompt;
       }()}},
       413, "prompt"},
  };
  for (const Case& c : cases) {
    int status = 0;
    json r = s.post("/v1/completions", c.body, &status);
    EXPECT_EQ(status, c.status) << c.body.dump();
    EXPECT_EQ(r["error"]["param"], c.param) << c.body.dump();
    EXPECT_NE(r["error"]["message"].get<std::string>().find(c.param), std::string::npos) << r.dump();
  }
  int status = 0;
  s.post("/v1/chat/completions", {{"messages", {{{"role", "robot"}, {"content", "x"}}}}}, &status);
  EXPECT_EQ(status, 400);
  auto r = s.client().Post("/v1/completions", "{not json", "application/json");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 400);
}

TEST(Server, ClientThatLeavesFreesItsKvBlocks) {
  Served s;
  std::atomic<int> events{0};
  httplib::Client c("127.0.0.1", s.server().port());
  json req = {{"prompt", "Go on forever"}, {"max_tokens", 480}, {"ignore_eos", true}, {"stream", true}};
  httplib::Request r;
  r.method = "POST";
  r.path = "/v1/completions";
  r.body = req.dump();
  r.set_header("Content-Type", "application/json");
  r.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++events < 5; };  // hang up after 5 events
  c.send(r);
  EXPECT_GE(events.load(), 5);
  // The server notices at its next write and frees the blocks long before 480 tokens.
  int64_t used = -1;
  for (int i = 0; i < 500 && (used = s.metric("exp_kv_blocks_used")) != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(used, 0);
  EXPECT_EQ(s.metric("exp_requests_cancelled_total"), 1);
  EXPECT_EQ(s.metric("exp_requests_in_flight"), 0);
}

TEST(Server, StopFinishesStreamsInFlightThenReturns) {
  Served s;
  auto stream = std::async(std::launch::async, [&] {
    return s.stream("/v1/completions", {{"prompt", "x"}, {"max_tokens", 40}, {"ignore_eos", true}, {"stream", true}});
  });
  while (s.metric("exp_requests_in_flight") < 1) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  s.server().stop();
  auto events = stream.get();
  EXPECT_EQ(events.size(), 41u);
  EXPECT_EQ(events.back(), "[DONE]");
  EXPECT_EQ(s.done().wait_for(std::chrono::seconds(30)), std::future_status::ready);
}

TEST(Server, GraceOverCancelsWhatIsLeft) {
  ServerOptions o;
  o.shutdown_grace_s = 0.2;
  Served s(o);
  auto r = std::async(std::launch::async, [&] {
    return s.post("/v1/completions", {{"prompt", "x"}, {"max_tokens", 480}, {"ignore_eos", true}});
  });
  while (s.metric("exp_requests_in_flight") < 1) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  s.server().stop();
  json out = r.get();
  EXPECT_EQ(out["choices"][0]["finish_reason"], "abort");
  EXPECT_LT(out["usage"]["completion_tokens"], 480);
}

// 1,000 requests from 64 concurrent streaming clients, 5% of them malformed: every good one is
// served in full, every bad one answered with a 400.
TEST(ServerLoad, ThousandRequestsWithMalformedOnesMixedIn) {
  ServerOptions o;
  o.max_connections = 80;
  Served s(o);
  constexpr int kClients = 64, kRequests = 1000;
  std::atomic<int> next{0}, served{0}, rejected{0}, wrong{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c)
    clients.emplace_back([&] {
      httplib::Client cl("127.0.0.1", s.server().port());
      cl.set_read_timeout(120);
      for (int i; (i = next++) < kRequests;) {
        const bool bad = i % 20 == 7;
        json body = {{"prompt", fmt::format("request {}", i)}, {"max_tokens", bad ? json(-i) : json(4)},
                     {"ignore_eos", true}, {"stream", true}};
        auto r = cl.Post("/v1/completions", body.dump(), "application/json");
        if (!r) {
          ADD_FAILURE() << "request " << i << ": " << httplib::to_string(r.error());
          ++wrong;
          continue;
        }
        if (bad) {
          (r->status == 400 ? rejected : wrong)++;
        } else {
          const bool ok = r->status == 200 && r->body.find("\"finish_reason\":\"length\"") != std::string::npos &&
                          r->body.ends_with("data: [DONE]\n\n");
          (ok ? served : wrong)++;
          if (!ok) ADD_FAILURE() << "request " << i << ": " << r->status << " " << r->body;
        }
      }
    });
  for (auto& t : clients) t.join();
  EXPECT_EQ(served.load(), 950);
  EXPECT_EQ(rejected.load(), 50);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(s.metric("exp_requests_finished_total"), 950);
  EXPECT_EQ(s.metric("exp_requests_cancelled_total"), 0);
}

// The real binary: `exp serve` on a free port, in the background; SIGTERM on destruction.
class ServeProcess {
 public:
  ServeProcess() : log_(fs::temp_directory_path() / fmt::format("exp_serve_cli_{}.log", getpid())) {
    const std::string cmd = fmt::format("{}/exp serve model_dir={} port=0 > {} 2>&1 & echo $!", EXP_BINARY_DIR,
                                        tiny_model().string(), log_.string());
    FILE* p = popen(cmd.c_str(), "r");
    if (fscanf(p, "%d", &pid_) != 1) pid_ = 0;
    pclose(p);
    for (int i = 0; i < 500 && !port_; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      std::smatch m;
      const std::string all = log();
      if (std::regex_search(all, m, std::regex("127\\.0\\.0\\.1:(\\d+)/v1"))) port_ = std::stoi(m[1]);
    }
  }
  ~ServeProcess() {
    if (pid_ > 0 && kill(pid_, 0) == 0) kill(pid_, SIGKILL);
    fs::remove(log_);
  }
  int port() const { return port_; }
  std::string log() const {
    std::ifstream in(log_);
    return {std::istreambuf_iterator<char>(in), {}};
  }
  // SIGTERM, then true once the process is gone (within 10 s).
  bool terminate() {
    kill(pid_, SIGTERM);
    for (int i = 0; i < 500 && kill(pid_, 0) == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return kill(pid_, 0) != 0;
  }

 private:
  fs::path log_;
  int pid_ = 0, port_ = 0;
};

std::string run_capture(const std::string& cmd, int* status) {
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  *status = pclose(p);
  return out;
}

TEST(ServeCli, ServesCurlAndStopsOnSigterm) {
  ServeProcess server;
  ASSERT_GT(server.port(), 0) << "exp serve did not say its port: " << server.log();
  int status = -1;
  const std::string out = run_capture(
      fmt::format("curl -sN --max-time 30 http://127.0.0.1:{}/v1/completions -H 'Content-Type: application/json' "
                  "-d '{{\"prompt\": \"Hello\", \"max_tokens\": 5, \"stream\": true, \"ignore_eos\": true}}'",
                  server.port()),
      &status);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 12) << out;  // 5 tokens + [DONE], each "data: …\n\n"
  EXPECT_TRUE(out.ends_with("data: [DONE]\n\n")) << out;
  EXPECT_TRUE(server.terminate()) << "exp serve still running after SIGTERM";
  EXPECT_NE(server.log().find("exp serve: stopped"), std::string::npos) << server.log();
}

// `exp run configs/experiment/metron.yaml` against `port` into `dir` with `overrides`; its output.
std::string run_metron(int port, const fs::path& dir, const std::string& overrides, int* status) {
  return run_capture(fmt::format("{}/exp run {}/configs/experiment/metron.yaml endpoint=http://127.0.0.1:{}/v1 "
                                 "hydra.run.dir={} {} 2>&1",
                                 EXP_BINARY_DIR, EXP_SOURCE_DIR, port, dir.string(), overrides),
                     status);
}

// The metron experiment against `exp serve`: every request measured, Metron's tables written.
TEST(MetronCli, MeasuresALiveServer) {
  ServeProcess server;
  ASSERT_GT(server.port(), 0) << server.log();
  const fs::path dir = fs::temp_directory_path() / fmt::format("exp_metron_{}", getpid());
  int status = -1;
  const std::string out =
      run_metron(server.port(), dir, "workload.num_requests=24 workload.qps=50 plots=true metrics.store_tokens=true", &status);
  ASSERT_EQ(status, 0) << out;
  auto r = results::ResultsReader::open(dir / "results.h5");
  EXPECT_EQ(std::get<double>(*r->attr("/summary", "requests_ok")), 24);
  EXPECT_GT(std::get<double>(*r->attr("/summary", "p50_ttft_s")), 0);
  EXPECT_EQ(r->read_table("/serving/requests").rows, 24);
  const auto sent = r->read_table("/metron/requests");
  ASSERT_EQ(sent.rows, 24);
  for (size_t c = 0; c < sent.columns.size(); ++c) {
    if (sent.columns[c].name == "received_tokens" || sent.columns[c].name == "asked_tokens") {
      EXPECT_GT(sent.values[c][0], 0);
    }
  }
  for (const char* png : {"ttft_cdf.png", "tbt_cdf.png", "ttft_violin.png", "tokens_vs_time.png"})
    EXPECT_TRUE(fs::exists(dir / png)) << png << "\n" << out;
  fs::remove_all(dir);
}

// Given prompts, text or ids, with their max_tokens (prompts=file); arrivals from the workload.
TEST(MetronCli, SendsGivenPrompts) {
  ServeProcess server;
  ASSERT_GT(server.port(), 0) << server.log();
  const fs::path dir = fs::temp_directory_path() / fmt::format("exp_metron_given_{}", getpid());
  const fs::path file = fs::temp_directory_path() / fmt::format("exp_metron_given_{}.jsonl", getpid());
  std::ofstream(file) << R"({"prompt": "Grüße aus Köln 🤗", "max_tokens": 5})" "\n" R"({"prompt": [1, 415, 5565], "max_tokens": 3})" "\n";
  int status = -1;
  const std::string out = run_metron(server.port(), dir, "prompts=file prompts_file=" + file.string() + " tokenizer_dir=" +
                                                             tiny_model().string(),
                                     &status);
  ASSERT_EQ(status, 0) << out;
  auto r = results::ResultsReader::open(dir / "results.h5");
  EXPECT_EQ(std::get<double>(*r->attr("/summary", "requests_ok")), 2);
  const auto sent = r->read_table("/metron/requests");
  ASSERT_EQ(sent.rows, 2);
  for (size_t c = 0; c < sent.columns.size(); ++c) {
    if (sent.columns[c].name == "received_tokens") {
      EXPECT_EQ(sent.values[c], (std::vector<double>{5, 3}));
    }
  }
  fs::remove_all(dir);
  fs::remove(file);
}

// Requests the server refuses are counted and listed, never dropped silently.
TEST(MetronCli, CountsRequestsTheServerRefuses) {
  ServeProcess server;
  ASSERT_GT(server.port(), 0) << server.log();
  const fs::path dir = fs::temp_directory_path() / fmt::format("exp_metron_bad_{}", getpid());
  int status = -1;
  const std::string out =
      run_metron(server.port(), dir, "workload.num_requests=6 workload.qps=50 token_id_range=[40000,50000]", &status);
  ASSERT_EQ(status, 0) << out;
  EXPECT_NE(out.find("HTTP 400: prompt: token id"), std::string::npos) << out;
  auto r = results::ResultsReader::open(dir / "results.h5");
  EXPECT_EQ(std::get<double>(*r->attr("/summary", "requests_ok")), 0);
  EXPECT_EQ(std::get<double>(*r->attr("/summary", "requests_http_error")), 6);
  fs::remove_all(dir);
}

// Metron's live capacity search, prefill profiler and P99 miss-rate curve, against exp serve.
TEST(MetronCli, FindsCapacityProfilesPrefillAndWritesTheMissRateCurve) {
  ServeProcess server;
  ASSERT_GT(server.port(), 0) << server.log();
  const fs::path dir = fs::temp_directory_path() / fmt::format("exp_metron_cap_{}", getpid());
  int status = -1;
  const std::string out = run_metron(server.port(), dir,
                                     "workload.num_requests=12 prefill_profile.enabled=true prefill_profile.min_log2=4 "
                                     "prefill_profile.max_log2=10 prefill_profile.repetitions=1 capacity.enabled=true "
                                     "capacity.start_qps=10 capacity.max_iterations=3 capacity.slo.type=deadline "
                                     "capacity.slo.tbt_deadline_s=1",
                                     &status);
  ASSERT_EQ(status, 0) << out;
  auto r = results::ResultsReader::open(dir / "results.h5");
  EXPECT_GE(r->read_table("/capacity/probes").rows, 1);
  EXPECT_GT(std::get<double>(*r->attr("/summary", "capacity_qps")), 0);
  EXPECT_GT(std::get<double>(*r->attr("/summary", "tpot_based_token_rate_tok_s")), 0);
  EXPECT_GT(std::get<double>(*r->attr("/summary", "tbt_based_token_rate_tok_s")), 0);
  // 2^4 .. 2^8 served; 2^9 fills the tiny model's 512-token context, leaving no room for the
  // output token: refused (413), which ends the sweep.
  EXPECT_EQ(r->read_table("/metron/prefill_profile").rows, 5);
  const auto curve = r->read_table("/metron/miss_rate_curve");
  ASSERT_EQ(curve.rows, 100);
  for (int64_t i = 1; i < curve.rows; ++i)  // a looser target never misses more
    EXPECT_LE(curve.values[1][static_cast<size_t>(i)], curve.values[1][static_cast<size_t>(i - 1)]);
  fs::remove_all(dir);
}

TEST(MetronCli, NoServerIsAnErrorNamingTheEndpoint) {
  const fs::path dir = fs::temp_directory_path() / fmt::format("exp_metron_none_{}", getpid());
  int status = -1;
  const std::string out = run_metron(1, dir, "", &status);
  EXPECT_NE(status, 0);
  EXPECT_NE(out.find("http://127.0.0.1:1/v1/models"), std::string::npos) << out;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace xp::serving
