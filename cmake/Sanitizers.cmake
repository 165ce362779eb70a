# EXP_SANITIZE builds everything with ASan + UBSan; the whole test suite must pass under it.
if(EXP_SANITIZE)
  set(_san -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  foreach(flag IN LISTS _san)
    add_compile_options($<$<COMPILE_LANGUAGE:CXX>:${flag}>)
  endforeach()
  add_link_options(${_san})
endif()
