// The process-wide spdlog logger "exp": console always, plus the run's log file once a run
// directory exists (Hydra's <job_dir>/<job_name>.log convention). Thread-safe (spdlog _mt sinks).
#pragma once
#include <spdlog/spdlog.h>

#include <filesystem>
#include <memory>

namespace xp::runtime {

std::shared_ptr<spdlog::logger> logger();
// Adds a file sink at `path` (appending, so a resumed run keeps one log).
void log_to_file(const std::filesystem::path& path);
// Removes file sinks (used between sweep jobs run in one process and by tests).
void stop_logging_to_file();
// The console's threshold (the file, when there is one, keeps the logger's level).
void set_console_level(spdlog::level::level_enum level);

}  // namespace xp::runtime
