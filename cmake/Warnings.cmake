# Project-wide warning flags; EXP_WERROR (ON in CI) turns them into errors.
add_library(exp_warnings INTERFACE)
target_compile_options(exp_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
     -Wcast-align -Woverloaded-virtual -Wimplicit-fallthrough>
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<BOOL:${EXP_WERROR}>>:-Werror>
  $<$<AND:$<COMPILE_LANGUAGE:CUDA>,$<BOOL:${EXP_WERROR}>>:-Werror=all-warnings>)
# Bit-exact resume across runs needs no fused-multiply-add contraction decided by the compiler.
add_compile_options($<$<COMPILE_LANGUAGE:CXX>:-ffp-contract=off>)
