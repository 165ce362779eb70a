// A thin RAII layer over the HDF5 C API (README, "Reading results"): each hid_t lives in a Handle
// that closes it with the right H5*close, and every call that can fail is checked by h5_check,
// which throws H5Error naming the operation and object. HDF5's own error printing is off.
// Not thread-safe (Debian's HDF5 is built without thread safety): one thread per file.
#pragma once
#include <hdf5.h>

#include <stdexcept>
#include <string>
#include <utility>

namespace xp::results {

class H5Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws H5Error("<what>: <HDF5's innermost message>") when `rc` is negative.
hid_t h5_check(hid_t rc, const std::string& what);
void disable_hdf5_error_printing();

class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle() = default;
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  ~Handle() { reset(); }
  Handle(Handle&& o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)), closer_(o.closer_) {}
  Handle& operator=(Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = std::exchange(o.id_, H5I_INVALID_HID);
      closer_ = o.closer_;
    }
    return *this;
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;

  hid_t get() const { return id_; }
  bool valid() const { return id_ >= 0; }
  void reset() {
    if (id_ >= 0 && closer_) closer_(id_);
    id_ = H5I_INVALID_HID;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
  Closer closer_ = nullptr;
};

inline Handle file_handle(hid_t id, const std::string& what) { return {h5_check(id, what), H5Fclose}; }
inline Handle group_handle(hid_t id, const std::string& what) { return {h5_check(id, what), H5Gclose}; }
inline Handle dataset_handle(hid_t id, const std::string& what) { return {h5_check(id, what), H5Dclose}; }
inline Handle space_handle(hid_t id, const std::string& what) { return {h5_check(id, what), H5Sclose}; }
inline Handle type_handle(hid_t id, const std::string& what) { return {h5_check(id, what), H5Tclose}; }
inline Handle plist_handle(hid_t id, const std::string& what) { return {h5_check(id, what), H5Pclose}; }
inline Handle attr_handle(hid_t id, const std::string& what) { return {h5_check(id, what), H5Aclose}; }

// Variable-length UTF-8 string type (what h5py writes for str).
Handle utf8_string_type();
// Keeps links and attributes in creation order, so tables list columns as they were declared.
void track_creation_order(hid_t create_plist);
// Opens `path` (e.g. "/serving/requests"), creating missing groups on the way.
Handle ensure_group(hid_t file, const std::string& path);
bool link_exists(hid_t loc, const std::string& path);

}  // namespace xp::results
