// Interpolation (OmegaConf semantics, docs/configs.md): ${a.b} absolute, ${.b} / ${..b}
// relative to the containing node, string interpolation "run_${a}", resolvers
// ${oc.env:VAR,default}, ${now:%Y-%m-%d} (one timestamp per process, so every ${now:} in a run
// agrees) and ${hydra:runtime.output_dir}. A whole-string reference keeps the referenced type.
// Unset mandatory values (???) and reference cycles are ConfigErrors.
#pragma once
#include <string>

#include "core/config/node.h"

namespace xp::config {

// Resolves the whole tree; throws ConfigError on any missing value, bad reference or cycle.
ConfigNode resolve(const ConfigNode& root);
// Resolves the node at `path` only (other parts may stay unresolved or missing).
ConfigNode resolve_at(const ConfigNode& root, const std::string& path);

}  // namespace xp::config
