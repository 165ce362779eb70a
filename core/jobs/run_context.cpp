#include "core/jobs/run_context.h"

#include <fmt/chrono.h>
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <stdexcept>

#include "core/config/yaml_io.h"
#include "core/runtime/build_info.h"
#include "core/runtime/files.h"
#include "core/runtime/logging.h"
#include "core/runtime/signals.h"

namespace xp::jobs {
namespace {

std::string utc_now() {
  auto now = std::chrono::system_clock::now();
  return fmt::format("{:%Y-%m-%dT%H:%M:%S}Z", std::chrono::floor<std::chrono::seconds>(now));
}

std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// HDF5 is not crash-safe: a process killed mid-write (SIGKILL, the OOM killer, a node failure)
// can leave results.h5 unreadable, as chunks written after the last flush may land where the
// flushed metadata still points. So each checkpoint keeps a copy of the flushed file beside it,
// and a resume starts from that copy (then cuts its tables back to the checkpoint's rows).
std::filesystem::path saved_results(const std::filesystem::path& output_dir) {
  return output_dir / "checkpoints" / "results.h5.saved";
}

void copy_atomically(const std::filesystem::path& from, const std::filesystem::path& to) {
  const std::string content = runtime::read_file(from);
  std::filesystem::create_directories(to.parent_path());
  runtime::write_file_atomic(to, content);
}

// Reads every table of the saved copy before a resume trusts it: a corrupt copy (a damaged disk,
// a partial copy from elsewhere) is an error naming it, not a decompression failure later on.
void verify_saved_results(const std::filesystem::path& saved) {
  try {
    auto reader = results::ResultsReader::open(saved);
    for (const auto& t : reader->tables()) reader->read_table(t);
  } catch (const std::exception& e) {
    throw std::runtime_error(fmt::format("{} is corrupt ({}): the run cannot continue from its checkpoint; "
                                         "start it again in a new run directory", saved.string(), e.what()));
  }
}

std::string hostname() {
  char buf[256] = {};
  ::gethostname(buf, sizeof(buf) - 1);
  return buf;
}

}  // namespace

RunContext::RunContext(RunSpec spec)
    : spec_(std::move(spec)), checkpoints_(spec_.output_dir / "checkpoints") {
  if (const config::ConfigNode* s = spec_.config.find("seed"); s && s->kind() == config::ConfigNode::Kind::kInt)
    seed_ = static_cast<uint64_t>(s->as_int());
  if (!writes()) return;
  std::filesystem::path file = spec_.output_dir / "results.h5";
  // A resume continues from the results saved with the last checkpoint. A run stopped or killed
  // before its first checkpoint has nothing worth keeping (its results.h5 may even be cut short
  // mid-write), so it starts again from a new file.
  const bool continues = spec_.resume && std::filesystem::exists(saved_results(spec_.output_dir));
  if (continues) {
    verify_saved_results(saved_results(spec_.output_dir));
    copy_atomically(saved_results(spec_.output_dir), file);
  }
  results_ = continues ? results::ResultsWriter::open_existing(file) : results::ResultsWriter::create(file);

  auto& r = *results_;
  if (!continues) {
    const auto& bi = runtime::build_info();
    r.set_attr("/", "created_utc", utc_now());
    r.set_attr("/", "git_sha", bi.git_sha);
    r.set_attr("/", "git_dirty", bi.git_dirty);
    r.set_attr("/", "build_info", bi.options);
    r.set_attr("/", "hostname", hostname());
    r.set_attr("/", "exp_name", spec_.experiment);
    const config::ConfigNode* num = spec_.hydra.at_path("job.num");
    r.set_attr("/", "job_num", num && num->kind() == config::ConfigNode::Kind::kInt ? num->as_int() : int64_t{0});
    r.set_attr("/", "seed", static_cast<int64_t>(seed_));
    r.set_attr("/", "overrides", spec_.overrides);
    r.write_text("/config", config::dump_yaml(spec_.config));
    r.write_text("/config_unresolved", config::dump_yaml(spec_.config_unresolved));
  }
  // Slurm ids describe the allocation running now, so a requeued job records its latest.
  r.set_attr("/", "slurm_job_id", env_or_empty("SLURM_JOB_ID"));
  r.set_attr("/", "slurm_array_job_id", env_or_empty("SLURM_ARRAY_JOB_ID"));
  r.set_attr("/", "slurm_array_task_id", env_or_empty("SLURM_ARRAY_TASK_ID"));
  r.set_attr("/", "slurm_restart_count", env_or_empty("SLURM_RESTART_COUNT"));
  r.set_attr("/", "start_utc", utc_now());
  r.flush();
}

RunContext::~RunContext() = default;

spdlog::logger& RunContext::log() const { return *runtime::logger(); }

namespace {
// What a table is on a process that does not write: rows counted, nothing kept.
class DiscardedTable final : public results::Table {
 public:
  explicit DiscardedTable(std::vector<results::ColumnSpec> columns) : columns_(std::move(columns)) {}
  void append(const std::vector<results::Cell>&) override { ++rows_; }
  int64_t rows() const override { return rows_; }
  void flush() override {}
  void truncate(int64_t rows) override { rows_ = std::min(rows_, rows); }
  const std::vector<results::ColumnSpec>& columns() const override { return columns_; }

 private:
  std::vector<results::ColumnSpec> columns_;
  int64_t rows_ = 0;
};
}  // namespace

results::Table& RunContext::table(const std::string& group_path, const std::vector<results::ColumnSpec>& columns) {
  if (!writes()) {
    auto& t = discarded_[group_path];
    if (!t) t = std::make_unique<DiscardedTable>(columns);
    return *t;
  }
  results::Table& t = results_->table(group_path, columns);
  if (spec_.resume) {
    auto it = restored_rows_.find(group_path);
    t.truncate(it == restored_rows_.end() ? 0 : it->second);  // rows written after the checkpoint go
  }
  return t;
}

void RunContext::set_summary(const std::string& name, const results::AttrValue& value) {
  if (results_) results_->set_attr("/summary", name, value);
  for (auto& [k, v] : summary_)
    if (k == name) {
      v = value;
      return;
    }
  summary_.emplace_back(name, value);
}

bool RunContext::should_stop() const { return runtime::stop_requested(); }

void RunContext::save_checkpoint(uint64_t step, const ByteWriter& payload) {
  has_checkpoint_ = true;
  if (!writes()) return;
  results_->flush();
  copy_atomically(spec_.output_dir / "results.h5", saved_results(spec_.output_dir));
  ByteWriter all;
  auto rows = results_->table_rows();
  all.put<uint64_t>(rows.size());
  for (const auto& [name, n] : rows) {
    all.put_string(name);
    all.put<int64_t>(n);
  }
  all.put_vector(payload.bytes());
  checkpoints_.save(step, all.bytes());
  has_checkpoint_ = true;
  runtime::logger()->debug("checkpoint saved at step {}", step);
}

std::optional<std::vector<std::byte>> RunContext::restore() {
  if (!spec_.processes || spec_.processes->size() == 1) return restore_here();
  // Process 0 reads; every process gets its answer (a leading byte: 1 = a payload follows).
  std::vector<std::byte> message{std::byte{0}};
  if (writes())
    if (auto payload = restore_here()) {
      message[0] = std::byte{1};
      message.insert(message.end(), payload->begin(), payload->end());
    }
  spec_.processes->broadcast_bytes(message, 0);
  if (message.at(0) == std::byte{0}) return std::nullopt;
  has_checkpoint_ = true;
  return std::vector<std::byte>(message.begin() + 1, message.end());
}

std::optional<std::vector<std::byte>> RunContext::restore_here() {
  if (!spec_.resume) return std::nullopt;
  auto loaded = checkpoints_.load_latest();
  if (!loaded) {
    runtime::logger()->info("no valid checkpoint in {}: starting from the beginning", checkpoints_.dir().string());
    return std::nullopt;
  }
  ByteReader r(loaded->payload);
  uint64_t n = r.get<uint64_t>();
  for (uint64_t i = 0; i < n; ++i) {
    std::string name = r.get_string();
    restored_rows_[name] = r.get<int64_t>();
  }
  runtime::logger()->info("resuming from {} (step {})", loaded->path.string(), loaded->step);
  has_checkpoint_ = true;
  return r.get_vector<std::byte>();
}

void RunContext::finish(RunOutcome outcome) {
  if (!results_) return;
  results_->set_attr("/", "end_utc", utc_now());
  if (outcome == RunOutcome::kDone) results_->mark_complete();
  else results_->flush();
}

}  // namespace xp::jobs
