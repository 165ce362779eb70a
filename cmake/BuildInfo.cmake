# Generates build_info.cpp at build time (not configure time) so the git sha and dirty flag
# recorded in every results file describe the binary that actually ran.
set(EXP_BUILD_INFO_CPP ${CMAKE_BINARY_DIR}/generated/build_info.cpp)
set(EXP_BUILD_OPTIONS
  "type=${CMAKE_BUILD_TYPE} cuda=${EXP_CUDA} sanitize=${EXP_SANITIZE} compiler=${CMAKE_CXX_COMPILER_ID}-${CMAKE_CXX_COMPILER_VERSION}")
add_custom_target(exp_build_info_gen
  BYPRODUCTS ${EXP_BUILD_INFO_CPP}
  COMMAND ${CMAKE_COMMAND} -DSRC=${CMAKE_SOURCE_DIR} -DOUT=${EXP_BUILD_INFO_CPP}
          "-DOPTIONS=${EXP_BUILD_OPTIONS}" -P ${CMAKE_CURRENT_LIST_DIR}/write_build_info.cmake
  COMMENT "Recording git sha and build options")
