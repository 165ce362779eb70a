// Libraries opened when first needed rather than linked: a linked library is mapped and
// initialised at every start of exp, used or not (cuBLAS alone cost 0.3 s and 200 MB). A
// forwarder with the library's own signature calls through symbol(), so call sites do not change.
#pragma once
#include <string>

namespace xp::runtime {

// The library `soname` (e.g. "libcublas.so.13"), opened on the first call and kept open; looked
// up as the dynamic loader does, then in `fallback_dir`. Throws naming both on failure.
void* shared_library(const std::string& soname, const std::string& fallback_dir);
// `name` in `library`; throws naming the symbol and `soname`.
void* library_symbol(void* library, const char* name, const std::string& soname);

}  // namespace xp::runtime
