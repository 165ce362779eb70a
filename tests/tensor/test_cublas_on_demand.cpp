// cuBLAS is not linked but opened by its first call (core/tensor/cuda/cublas_on_demand.cpp), so
// that runs which never use a GPU never load it. Runs without a GPU too: the library loads and
// answers (cublasCreate then reports that it cannot initialise).
#include <cublas_v2.h>
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <string>

namespace {

const std::string kCublas = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);

bool loaded() {
  void* h = dlopen(kCublas.c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (h) dlclose(h);
  return h != nullptr;
}

TEST(CublasOnDemand, NotLoadedAtStartButByTheFirstCall) {
  EXPECT_FALSE(loaded()) << "the test binary loaded cuBLAS at start-up: something links it";
  cublasHandle_t h = nullptr;
  const cublasStatus_t s = cublasCreate(&h);
  EXPECT_TRUE(s == CUBLAS_STATUS_SUCCESS || s == CUBLAS_STATUS_NOT_INITIALIZED) << s;
  EXPECT_TRUE(loaded());
}

}  // namespace
