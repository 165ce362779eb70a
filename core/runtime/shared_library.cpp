#include "core/runtime/shared_library.h"

#include <dlfcn.h>

#include <filesystem>
#include <map>
#include <mutex>
#include <stdexcept>

namespace xp::runtime {

void* shared_library(const std::string& soname, const std::string& fallback_dir) {
  static std::mutex mu;
  static std::map<std::string, void*> open;
  std::lock_guard lock(mu);
  if (void* h = open[soname]) return h;
  void* h = dlopen(soname.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h && !fallback_dir.empty()) h = dlopen((std::filesystem::path(fallback_dir) / soname).c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    const char* why = dlerror();
    throw std::runtime_error("cannot load " + soname + " (also looked in " + fallback_dir + "): " + (why ? why : "?"));
  }
  return open[soname] = h;
}

void* library_symbol(void* library, const char* name, const std::string& soname) {
  void* s = dlsym(library, name);
  if (!s) throw std::runtime_error(soname + " has no symbol " + name);
  return s;
}

}  // namespace xp::runtime
