#include "core/results/h5.h"

#include <fmt/format.h>

namespace xp::results {
namespace {

herr_t innermost_message(unsigned n, const H5E_error2_t* err, void* out) {
  if (n == 0 && err && err->desc) *static_cast<std::string*>(out) = err->desc;
  return 0;
}

// A failed system call shows up as HDF5's long "file write failed: time = ..., filename = ...,
// errno = 28, error message = 'No space left on device', ..."; a person needs the last part.
std::string shorten(const std::string& detail) {
  const std::string tag = "error message = '";
  size_t b = detail.find(tag);
  if (b == std::string::npos) return detail;
  b += tag.size();
  size_t e = detail.find('\'', b);
  return detail.substr(b, e == std::string::npos ? std::string::npos : e - b);
}

}  // namespace

void disable_hdf5_error_printing() {
  // No HDF5 clean-up at exit: every file is closed by its Handle, and a file whose close failed
  // (a full disk) stays half-open inside the library, where the exit-time clean-up crashed on it
  // (a segfault in H5F__close_cb instead of exit code 1). Must come before any other HDF5 call.
  static const bool once = [] {
    H5dont_atexit();
    return true;
  }();
  (void)once;
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
}

hid_t h5_check(hid_t rc, const std::string& what) {
  if (rc >= 0) return rc;
  std::string detail;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost_message, &detail);
  H5Eclear2(H5E_DEFAULT);
  throw H5Error(detail.empty() ? what : fmt::format("{}: {}", what, shorten(detail)));
}

Handle utf8_string_type() {
  Handle t = type_handle(H5Tcopy(H5T_C_S1), "copy string type");
  h5_check(H5Tset_size(t.get(), H5T_VARIABLE), "set string size");
  h5_check(H5Tset_cset(t.get(), H5T_CSET_UTF8), "set string charset");
  return t;
}

bool link_exists(hid_t loc, const std::string& path) {
  // H5Lexists needs each parent to exist, so walk the path one component at a time.
  size_t pos = 0;
  while (pos != std::string::npos) {
    size_t next = path.find('/', pos + 1);
    std::string prefix = path.substr(0, next);
    if (!prefix.empty() && prefix != "/" && H5Lexists(loc, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    pos = next;
  }
  return true;
}

void track_creation_order(hid_t create_plist) {
  h5_check(H5Pset_link_creation_order(create_plist, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED), "link order");
  h5_check(H5Pset_attr_creation_order(create_plist, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED), "attr order");
}

Handle ensure_group(hid_t file, const std::string& path) {
  size_t pos = 0;
  while (pos != std::string::npos) {
    size_t next = path.find('/', pos + 1);
    std::string prefix = path.substr(0, next);
    if (!prefix.empty() && prefix != "/" && H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0) {
      Handle gcpl = plist_handle(H5Pcreate(H5P_GROUP_CREATE), "gcpl");
      track_creation_order(gcpl.get());
      Handle g = group_handle(H5Gcreate2(file, prefix.c_str(), H5P_DEFAULT, gcpl.get(), H5P_DEFAULT),
                              "create group " + prefix);
    }
    pos = next;
  }
  return group_handle(H5Gopen2(file, path.c_str(), H5P_DEFAULT), "open group " + path);
}

}  // namespace xp::results
