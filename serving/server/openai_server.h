// `exp serve`: the engine behind an OpenAI-compatible HTTP API (docs/serving_text.md).
//
//   POST /v1/completions, /v1/chat/completions   (stream: true = server-sent events, one per token)
//   GET  /v1/models, /health
//
// One engine thread owns the Engine and the shared scheduler: HTTP handler threads (cpp-httplib's
// pool) validate a request, tokenise it and hand it over; the engine thread admits new requests
// between iterations, runs one iteration, and routes each sampled token to its request's stream.
// A request ends at its max_tokens, at the checkpoint's end-of-sequence token (unless
// ignore_eos), at a stop string, or when its client disconnects — the last three free its KV
// blocks at once (Engine::finish_early). Bad requests get OpenAI's error object (400 naming the
// field, 404 for another model, 413 for a prompt beyond the context) and never touch the engine.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "serving/model/llama.h"
#include "serving/scheduler/scheduler_config.h"

namespace xp::serving {

struct ServerOptions {
  std::filesystem::path model_dir;  // config.json, model.safetensors, tokenizer.json|tokenizer.model
  std::string model_name;           // what clients send as "model"; default: model_dir's folder name
  std::string host = "127.0.0.1";
  int port = 8000;                  // 0: any free port (see OpenAiServer::port())
  std::string device = "cpu";
  SchedulerConfig scheduler;
  int64_t kv_blocks = 1024;
  uint64_t seed = 0;                // requests without "seed" draw from stream (seed, request id)
  int max_connections = 128;        // HTTP worker threads: concurrent streams served at once
  double shutdown_grace_s = 30;     // on stop(): in-flight requests get this long to finish
  int64_t default_max_tokens = 16;  // OpenAI's default for /v1/completions
};

class OpenAiServer {
 public:
  explicit OpenAiServer(ServerOptions options);  // loads the model and tokenizer; binds the port
  ~OpenAiServer();
  OpenAiServer(const OpenAiServer&) = delete;
  OpenAiServer& operator=(const OpenAiServer&) = delete;

  int port() const;
  const std::string& model_name() const;  // as clients must send it
  // Serves until stop(); returns once every in-flight request has finished or been cancelled.
  void run();
  // Graceful: new requests get 503, in-flight ones finish (up to shutdown_grace_s, then are
  // cancelled with finish_reason "abort"), then run() returns. Safe from any thread.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace xp::serving
