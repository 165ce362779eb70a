// HDF5, loaded on its first call. Debian's libhdf5 brings libcurl and through it Kerberos, LDAP,
// GnuTLS and SSH libraries: linked, the dynamic loader mapped and relocated them at every start
// of exp, ~14 ms of a 36 ms `exp --help` (measured 2026-12-06 on a 2-core VM). These definitions
// stand in for the HDF5 entry points exp calls, as core/tensor/cuda/cublas_on_demand.cpp does for
// cuBLAS: the first opens the library and each forwards to the real symbol.
//
// HDF5's predefined types and property-list classes are global variables read through macros
// that call H5open() first (H5T_NATIVE_DOUBLE is `(H5open(), H5T_NATIVE_DOUBLE_g)`), so they are
// defined here too, and our H5open() copies the library's values into them.
//
// Adding an HDF5 call elsewhere: add its forwarder here (the link fails until one exists); a new
// predefined type or class goes into kGlobals.
#include <hdf5.h>

#include <string>
#include <utility>

#include "core/runtime/shared_library.h"

namespace {

const std::string& library_path() {
  static const std::string path = EXP_HDF5_LIBRARY;
  return path;
}

void* symbol(const char* name) {
  return xp::runtime::library_symbol(xp::runtime::shared_library(library_path(), ""), name, library_path());
}

template <class F>
F real(const char* name) {
  return reinterpret_cast<F>(symbol(name));
}

}  // namespace

extern "C" {

hid_t H5T_NATIVE_DOUBLE_g = H5I_INVALID_HID, H5T_NATIVE_FLOAT_g = H5I_INVALID_HID,
      H5T_NATIVE_INT32_g = H5I_INVALID_HID, H5T_NATIVE_INT64_g = H5I_INVALID_HID,
      H5T_NATIVE_UINT16_g = H5I_INVALID_HID, H5T_NATIVE_UINT32_g = H5I_INVALID_HID,
      H5T_NATIVE_UINT64_g = H5I_INVALID_HID, H5T_NATIVE_UINT8_g = H5I_INVALID_HID, H5T_C_S1_g = H5I_INVALID_HID,
      H5P_CLS_DATASET_CREATE_ID_g = H5I_INVALID_HID, H5P_CLS_DATASET_XFER_ID_g = H5I_INVALID_HID,
      H5P_CLS_FILE_ACCESS_ID_g = H5I_INVALID_HID, H5P_CLS_FILE_CREATE_ID_g = H5I_INVALID_HID,
      H5P_CLS_GROUP_CREATE_ID_g = H5I_INVALID_HID;

}  // extern "C"

namespace {

const std::pair<const char*, hid_t*> kGlobals[] = {
    {"H5T_NATIVE_DOUBLE_g", &H5T_NATIVE_DOUBLE_g},
    {"H5T_NATIVE_FLOAT_g", &H5T_NATIVE_FLOAT_g},
    {"H5T_NATIVE_INT32_g", &H5T_NATIVE_INT32_g},
    {"H5T_NATIVE_INT64_g", &H5T_NATIVE_INT64_g},
    {"H5T_NATIVE_UINT16_g", &H5T_NATIVE_UINT16_g},
    {"H5T_NATIVE_UINT32_g", &H5T_NATIVE_UINT32_g},
    {"H5T_NATIVE_UINT64_g", &H5T_NATIVE_UINT64_g},
    {"H5T_NATIVE_UINT8_g", &H5T_NATIVE_UINT8_g},
    {"H5T_C_S1_g", &H5T_C_S1_g},
    {"H5P_CLS_DATASET_CREATE_ID_g", &H5P_CLS_DATASET_CREATE_ID_g},
    {"H5P_CLS_DATASET_XFER_ID_g", &H5P_CLS_DATASET_XFER_ID_g},
    {"H5P_CLS_FILE_ACCESS_ID_g", &H5P_CLS_FILE_ACCESS_ID_g},
    {"H5P_CLS_FILE_CREATE_ID_g", &H5P_CLS_FILE_CREATE_ID_g},
    {"H5P_CLS_GROUP_CREATE_ID_g", &H5P_CLS_GROUP_CREATE_ID_g},
};

}  // namespace

// One forwarder: `name` with its own parameter list `params`, passing `args` on.
#define EXP_H5_FORWARD(ret, name, params, args)                   \
  ret name params {                                               \
    static const auto forward_to = real<decltype(&name)>(#name); \
    return forward_to args;                                       \
  }

extern "C" {

herr_t H5open(void) {
  // Initialises the library once, then reads its predefined ids (valid from then on).
  static const herr_t status = [] {
    const herr_t s = real<herr_t (*)(void)>("H5open")();
    for (const auto& [name, ours] : kGlobals) *ours = *static_cast<const hid_t*>(symbol(name));
    return s;
  }();
  return status;
}

EXP_H5_FORWARD(herr_t, H5dont_atexit, (void), ())
// The file-access flags (H5F_ACC_RDONLY, ...) check the header's version against the library's.
EXP_H5_FORWARD(herr_t, H5check_version, (unsigned major, unsigned minor, unsigned release), (major, minor, release))
EXP_H5_FORWARD(herr_t, H5Aclose, (hid_t a), (a))
EXP_H5_FORWARD(hid_t, H5Acreate2, (hid_t l, const char* n, hid_t t, hid_t s, hid_t c, hid_t a), (l, n, t, s, c, a))
EXP_H5_FORWARD(herr_t, H5Adelete, (hid_t l, const char* n), (l, n))
EXP_H5_FORWARD(htri_t, H5Aexists, (hid_t o, const char* n), (o, n))
EXP_H5_FORWARD(hid_t, H5Aget_space, (hid_t a), (a))
EXP_H5_FORWARD(hid_t, H5Aget_type, (hid_t a), (a))
EXP_H5_FORWARD(herr_t, H5Aiterate2, (hid_t l, H5_index_t i, H5_iter_order_t o, hsize_t* n, H5A_operator2_t op, void* d),
               (l, i, o, n, op, d))
EXP_H5_FORWARD(hid_t, H5Aopen, (hid_t o, const char* n, hid_t a), (o, n, a))
EXP_H5_FORWARD(herr_t, H5Aread, (hid_t a, hid_t t, void* b), (a, t, b))
EXP_H5_FORWARD(herr_t, H5Awrite, (hid_t a, hid_t t, const void* b), (a, t, b))
EXP_H5_FORWARD(herr_t, H5Dclose, (hid_t d), (d))
EXP_H5_FORWARD(hid_t, H5Dcreate2, (hid_t l, const char* n, hid_t t, hid_t s, hid_t lc, hid_t dc, hid_t da),
               (l, n, t, s, lc, dc, da))
EXP_H5_FORWARD(hid_t, H5Dget_space, (hid_t d), (d))
EXP_H5_FORWARD(hid_t, H5Dopen2, (hid_t l, const char* n, hid_t a), (l, n, a))
EXP_H5_FORWARD(herr_t, H5Dread, (hid_t d, hid_t t, hid_t m, hid_t f, hid_t x, void* b), (d, t, m, f, x, b))
EXP_H5_FORWARD(herr_t, H5Dset_extent, (hid_t d, const hsize_t size[]), (d, size))
EXP_H5_FORWARD(herr_t, H5Dvlen_reclaim, (hid_t t, hid_t s, hid_t x, void* b), (t, s, x, b))
EXP_H5_FORWARD(herr_t, H5Dwrite, (hid_t d, hid_t t, hid_t m, hid_t f, hid_t x, const void* b), (d, t, m, f, x, b))
EXP_H5_FORWARD(herr_t, H5Eclear2, (hid_t e), (e))
EXP_H5_FORWARD(herr_t, H5Eset_auto2, (hid_t e, H5E_auto2_t f, void* d), (e, f, d))
EXP_H5_FORWARD(herr_t, H5Ewalk2, (hid_t e, H5E_direction_t dir, H5E_walk2_t f, void* d), (e, dir, f, d))
EXP_H5_FORWARD(herr_t, H5Fclose, (hid_t f), (f))
EXP_H5_FORWARD(hid_t, H5Fcreate, (const char* n, unsigned flags, hid_t c, hid_t a), (n, flags, c, a))
EXP_H5_FORWARD(herr_t, H5Fflush, (hid_t o, H5F_scope_t s), (o, s))
EXP_H5_FORWARD(hid_t, H5Fopen, (const char* n, unsigned flags, hid_t a), (n, flags, a))
EXP_H5_FORWARD(herr_t, H5Gclose, (hid_t g), (g))
EXP_H5_FORWARD(hid_t, H5Gcreate2, (hid_t l, const char* n, hid_t lc, hid_t gc, hid_t ga), (l, n, lc, gc, ga))
EXP_H5_FORWARD(herr_t, H5Gget_info, (hid_t l, H5G_info_t* i), (l, i))
EXP_H5_FORWARD(hid_t, H5Gopen2, (hid_t l, const char* n, hid_t a), (l, n, a))
EXP_H5_FORWARD(herr_t, H5Lcreate_external, (const char* f, const char* o, hid_t l, const char* n, hid_t lc, hid_t la),
               (f, o, l, n, lc, la))
EXP_H5_FORWARD(herr_t, H5Ldelete, (hid_t l, const char* n, hid_t a), (l, n, a))
EXP_H5_FORWARD(htri_t, H5Lexists, (hid_t l, const char* n, hid_t a), (l, n, a))
EXP_H5_FORWARD(ssize_t, H5Lget_name_by_idx,
               (hid_t l, const char* g, H5_index_t i, H5_iter_order_t o, hsize_t n, char* name, size_t size, hid_t a),
               (l, g, i, o, n, name, size, a))
EXP_H5_FORWARD(herr_t, H5Oclose, (hid_t o), (o))
EXP_H5_FORWARD(hid_t, H5Oopen, (hid_t l, const char* n, hid_t a), (l, n, a))
EXP_H5_FORWARD(herr_t, H5Ovisit2, (hid_t o, H5_index_t i, H5_iter_order_t ord, H5O_iterate_t op, void* d, unsigned f),
               (o, i, ord, op, d, f))
EXP_H5_FORWARD(herr_t, H5Pclose, (hid_t p), (p))
EXP_H5_FORWARD(hid_t, H5Pcreate, (hid_t c), (c))
EXP_H5_FORWARD(herr_t, H5Pset_attr_creation_order, (hid_t p, unsigned f), (p, f))
EXP_H5_FORWARD(herr_t, H5Pset_buffer, (hid_t p, size_t s, void* t, void* b), (p, s, t, b))
EXP_H5_FORWARD(herr_t, H5Pset_chunk, (hid_t p, int n, const hsize_t dim[]), (p, n, dim))
EXP_H5_FORWARD(herr_t, H5Pset_deflate, (hid_t p, unsigned level), (p, level))
EXP_H5_FORWARD(herr_t, H5Pset_file_locking, (hid_t p, hbool_t use, hbool_t ignore), (p, use, ignore))
EXP_H5_FORWARD(herr_t, H5Pset_fill_time, (hid_t p, H5D_fill_time_t t), (p, t))
EXP_H5_FORWARD(herr_t, H5Pset_link_creation_order, (hid_t p, unsigned f), (p, f))
EXP_H5_FORWARD(herr_t, H5Pset_shuffle, (hid_t p), (p))
EXP_H5_FORWARD(herr_t, H5Sclose, (hid_t s), (s))
EXP_H5_FORWARD(hid_t, H5Screate, (H5S_class_t t), (t))
EXP_H5_FORWARD(hid_t, H5Screate_simple, (int r, const hsize_t dims[], const hsize_t maxdims[]), (r, dims, maxdims))
EXP_H5_FORWARD(int, H5Sget_simple_extent_dims, (hid_t s, hsize_t dims[], hsize_t maxdims[]), (s, dims, maxdims))
EXP_H5_FORWARD(int, H5Sget_simple_extent_ndims, (hid_t s), (s))
EXP_H5_FORWARD(hssize_t, H5Sget_simple_extent_npoints, (hid_t s), (s))
EXP_H5_FORWARD(H5S_class_t, H5Sget_simple_extent_type, (hid_t s), (s))
EXP_H5_FORWARD(herr_t, H5Sselect_hyperslab,
               (hid_t s, H5S_seloper_t op, const hsize_t start[], const hsize_t stride[], const hsize_t count[],
                const hsize_t block[]),
               (s, op, start, stride, count, block))
EXP_H5_FORWARD(herr_t, H5Tclose, (hid_t t), (t))
EXP_H5_FORWARD(hid_t, H5Tcopy, (hid_t t), (t))
EXP_H5_FORWARD(H5T_class_t, H5Tget_class, (hid_t t), (t))
EXP_H5_FORWARD(herr_t, H5Tset_cset, (hid_t t, H5T_cset_t c), (t, c))
EXP_H5_FORWARD(herr_t, H5Tset_size, (hid_t t, size_t s), (t, s))

}  // extern "C"
