#include "core/runtime/logging.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

namespace xp::runtime {

std::shared_ptr<spdlog::logger> logger() {
  static std::shared_ptr<spdlog::logger> log = [] {
    auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    console->set_pattern("[%H:%M:%S] %^%l%$ %v");
    auto l = std::make_shared<spdlog::logger>("exp", console);
    l->set_level(spdlog::level::info);
    l->flush_on(spdlog::level::info);
    return l;
  }();
  return log;
}

void log_to_file(const std::filesystem::path& path) {
  stop_logging_to_file();
  auto file = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path.string(), /*truncate=*/false);
  file->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");
  logger()->sinks().push_back(file);
}

void set_console_level(spdlog::level::level_enum level) {
  for (auto& sink : logger()->sinks())
    if (std::dynamic_pointer_cast<spdlog::sinks::basic_file_sink_mt>(sink) == nullptr) sink->set_level(level);
}

void stop_logging_to_file() {
  auto& sinks = logger()->sinks();
  std::erase_if(sinks, [](const auto& s) {
    return std::dynamic_pointer_cast<spdlog::sinks::basic_file_sink_mt>(s) != nullptr;
  });
}

}  // namespace xp::runtime
