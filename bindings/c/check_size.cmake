# Strips a copy of a shared library and checks its size.
#   cmake -DLIB=<lib> -DSTRIP=<strip> -DOUT=<copy> -DMAX_BYTES=<n> -P check_size.cmake
file(COPY_FILE "${LIB}" "${OUT}")
execute_process(COMMAND "${STRIP}" --strip-all "${OUT}" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${STRIP} failed on ${OUT}")
endif()
file(SIZE "${OUT}" bytes)
file(SIZE "${LIB}" unstripped)
math(EXPR kib "${bytes} / 1024")
message(STATUS "stripped ${LIB}: ${bytes} bytes (${kib} KiB); unstripped ${unstripped} bytes")
if(bytes GREATER MAX_BYTES)
  message(FATAL_ERROR "stripped size ${bytes} exceeds ${MAX_BYTES} bytes")
endif()
