// HDF5 is not linked but opened by its first call (core/results/hdf5_on_demand.cpp), so that
// `exp --help` and other commands that write no results never load it and its dependencies.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "core/results/results_file.h"

namespace {

static_assert(sizeof(EXP_HDF5_LIBRARY) > 1, "the build names the HDF5 library (dlopen(\"\") is the program itself)");

bool loaded() {
  void* h = dlopen(EXP_HDF5_LIBRARY, RTLD_NOW | RTLD_NOLOAD);
  if (h) dlclose(h);
  return h != nullptr;
}

TEST(Hdf5OnDemand, NotLoadedAtStartButByTheFirstCall) {
  EXPECT_FALSE(loaded()) << "the test binary loaded HDF5 at start-up: something links it";
  const auto path = std::filesystem::temp_directory_path() / ("hdf5_on_demand_" + std::to_string(::getpid()) + ".h5");
  {
    auto w = xp::results::ResultsWriter::create(path);
    w->table("/t", {{"x", xp::results::ColumnType::kFloat64, "", "a column"}}).append({1.5});
    w->mark_complete();
  }
  EXPECT_TRUE(loaded());
  auto r = xp::results::ResultsReader::open(path);
  EXPECT_TRUE(r->complete());
  EXPECT_EQ(r->read_table("/t").values, std::vector<std::vector<double>>{{1.5}});  // predefined types work
  std::filesystem::remove(path);
}

}  // namespace
