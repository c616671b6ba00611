# KILN_OPS with a name that is not an op stops the configure step with a message naming it
# (cmake/KilnOps.cmake), before anything is built.
#   cmake -DSOURCE_DIR=.. -DWORK_DIR=.. -DGENERATOR=.. -P check_kiln_ops.cmake
file(REMOVE_RECURSE ${WORK_DIR})
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${WORK_DIR} -G ${GENERATOR}
    -DKILN_WITH_ONEDNN=OFF -DKILN_WITH_MPI=OFF -DKILN_BUILD_TESTS=OFF
    -DKILN_BUILD_EXAMPLES=OFF -DKILN_BUILD_BENCHMARKS=OFF -DKILN_BUILD_APPS=OFF
    "-DKILN_OPS=matmul;frobnicate"
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0)
  message(FATAL_ERROR "configure with KILN_OPS=matmul;frobnicate succeeded")
endif()
# (CMake wraps the message; the list of ops follows the name.)
if(NOT err MATCHES "KILN_OPS: 'frobnicate' is not an op\\.[ \n]+Ops: input parameter constant matmul")
  message(FATAL_ERROR "configure failed without naming the bad op: ${err}")
endif()
message(STATUS "refused as expected")
