# Included by check_output.cmake and check_accuracy.cmake: runs EXE with ARGS (under
# EMULATOR when set), prints what it wrote and fails unless it exits with 0; its standard
# output is left in `out`.
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
