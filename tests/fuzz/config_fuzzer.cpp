// libFuzzer target over the config front end: the input is split at the first NUL-free line
// "---overrides---"; the part before is parsed as a YAML config file, each line after as a
// command-line override. Everything is then merged, resolved and dumped. ConfigError is the
// expected answer to bad input; any other exception, crash, leak or UB is a bug.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include "core/config/error.h"
#include "core/config/override.h"
#include "core/config/resolve.h"
#include "core/config/sweep.h"
#include "core/config/yaml_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace xp::config;
  std::string input(reinterpret_cast<const char*>(data), size);
  std::string yaml = input, overrides;
  if (size_t cut = input.find("---overrides---"); cut != std::string::npos) {
    yaml = input.substr(0, cut);
    overrides = input.substr(cut + 15);
  }
  ConfigNode root = ConfigNode::map();
  try {
    root = load_yaml_string(yaml, "fuzz.yaml");
    if (!root.is_map()) root = ConfigNode::map();
  } catch (const ConfigError&) {
  }
  std::istringstream lines(overrides);
  std::vector<std::string> all;
  for (std::string line; std::getline(lines, line);) {
    try {
      Override o = parse_override(line);
      all.push_back(line);
      if (o.value && o.op != Override::Op::kDelete && !o.key.empty()) {
        ConfigNode& dst = root.ensure_path(o.key);
        ConfigNode v = *o.value;
        dst = std::move(v);
      } else if (o.op == Override::Op::kDelete) {
        root.erase_path(o.key);
      }
    } catch (const ConfigError&) {
    }
  }
  try {
    (void)expand_sweep(all, SearchPath());
  } catch (const ConfigError&) {
  }
  try {
    ConfigNode r = resolve(root);
    std::string dumped = dump_yaml(r);
    ConfigNode again = load_yaml_string(dumped, "dump");
    if (!(again == r)) __builtin_trap();  // a dump must read back as the same tree
  } catch (const ConfigError&) {
  }
  return 0;
}
