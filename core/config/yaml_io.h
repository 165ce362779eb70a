// YAML in and out of ConfigNode. yaml-cpp parses; we convert at once into our own tree, typing
// plain scalars the way OmegaConf does (null, true/false, ints with `_`, floats incl. inf/nan;
// quoted scalars stay strings). Parse errors become ConfigErrors with file:line:col.
#pragma once
#include <filesystem>
#include <string>
#include <string_view>

#include "core/config/node.h"

namespace xp::config {

// Types an unquoted scalar: "null"/"~"/"" -> null, "TRUE" -> bool, "1_000" -> int, "1e-3" -> float.
ConfigNode infer_scalar(std::string_view text);

// Throws ConfigError at the first byte that is not valid UTF-8, a control character or a Unicode
// noncharacter (YAML text must be UTF-8; the emitter would otherwise rewrite such bytes and a dump
// would no longer match its source).
void check_utf8(std::string_view text, const std::string& source_name);

ConfigNode load_yaml_file(const std::filesystem::path& path);
// `source_name` names the text in error messages and node locations.
ConfigNode load_yaml_string(const std::string& text, const std::string& source_name);

// Block-style YAML with a trailing newline; strings that would read back as another type are
// quoted, so load(dump(x)) == x.
std::string dump_yaml(const ConfigNode& node);

}  // namespace xp::config
