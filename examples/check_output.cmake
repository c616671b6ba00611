# Runs an example and checks that it exits with 0 and that its output matches every regular
# expression of EXPECT (a ;-separated list).
#   cmake -DEXE=<program> -DARGS=<arg;...> "-DEXPECT=re1;re2" -P check_output.cmake
separate_arguments(_emulator UNIX_COMMAND "${EMULATOR}")
execute_process(COMMAND ${_emulator} ${EXE} ${ARGS}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}")
if(err)
  message("${err}")
endif()
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${EXE} exited with ${rc}")
endif()
foreach(re IN LISTS EXPECT)
  if(NOT out MATCHES "${re}")
    message(FATAL_ERROR "the output does not match '${re}'")
  endif()
endforeach()
