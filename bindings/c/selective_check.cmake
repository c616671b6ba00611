# The selective edge library (issue 16): a kiln_infer with only the ops that the given
# model files use (`kiln ops`), built for size (KILN_OPTIMIZE_SIZE: -Os, sections,
# --gc-sections, LTO) without the drift monitor (KILN_INFER_MONITOR=OFF), as a shared
# library without oneDNN, for x86_64 and, with QEMU set, for aarch64, each twice: exporting
# Kiln's C++ and C APIs, and exporting only the C API (KILN_INFER_C_ONLY). For each:
#   - the stripped library is at most MAX_BYTES (the C-only one exports only kiln_* names);
#   - kiln_run linked to it gives every model's outputs (batch 1 and 5) within 1e-5
#     relative of the full build's kiln_run (HOST_RUN, Eigen kernels), or within 1e-9 for
#     values near zero: the trained digits models give probabilities down to 1e-13, which
#     aarch64's fused multiply-adds move by more than 1e-5 of themselves;
#   - a model with an op left out (REFUSED_MODEL) fails to load with a message naming
#     KILN_OPS, and kiln_run --monitor fails saying the monitor is not built in.
#   cmake -DSOURCE_DIR=.. -DWORK_DIR=.. -DKILN=<kiln command> -DHOST_RUN=<kiln_run>
#         -DMODELS="a.kiln|b.kiln" -DREFUSED_MODEL=.. -DPROFILE_MODEL=.. -DMAX_BYTES=500000
#         [-DQEMU=<qemu-aarch64>] -P selective_check.cmake
cmake_minimum_required(VERSION 3.25)
include(${CMAKE_CURRENT_LIST_DIR}/compare_runs.cmake)
string(REPLACE "|" ";" MODELS "${MODELS}")

execute_process(COMMAND ${KILN} ops ${MODELS}
  RESULT_VARIABLE rc OUTPUT_VARIABLE ops ERROR_VARIABLE err OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT rc EQUAL 0 OR ops STREQUAL "")
  message(FATAL_ERROR "kiln ops ${MODELS} failed: ${err}")
endif()
message(STATUS "KILN_OPS=${ops}")

# The full build's outputs, the reference for every selective build.
foreach(model IN LISTS MODELS)
  get_filename_component(name ${model} NAME_WE)
  foreach(batch 1 5)
    execute_process(COMMAND ${HOST_RUN} ${model} ${batch} eigen
      RESULT_VARIABLE rc OUTPUT_VARIABLE reference_${name}_${batch} ERROR_VARIABLE err)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "kiln_run ${model} ${batch} (full build) failed: ${err}")
    endif()
  endforeach()
endforeach()

set(arches x86_64)
if(QEMU)
  list(APPEND arches aarch64)
endif()
foreach(arch IN LISTS arches)
  set(dir ${WORK_DIR}/${arch})
  set(cross "")
  set(strip strip)
  set(nm nm)
  set(emulator "")
  if(arch STREQUAL "aarch64")
    set(cross -DCMAKE_TOOLCHAIN_FILE=${SOURCE_DIR}/cmake/toolchains/aarch64-linux-gnu.cmake)
    set(strip aarch64-linux-gnu-strip)
    set(nm aarch64-linux-gnu-nm)
    set(emulator ${QEMU} -L /usr/aarch64-linux-gnu)
  endif()
  foreach(exports cxx c)
    set(what "${arch}")
    set(c_only OFF)
    if(exports STREQUAL "c")
      set(what "${arch} C-only")
      set(c_only ON)
    endif()
    # The "edge" configure preset (CMakePresets.json), plus the op list and no monitor.
    execute_process(COMMAND ${CMAKE_COMMAND} --preset edge -B ${dir} ${cross}
        -DKILN_INFER_MONITOR=OFF "-DKILN_OPS=${ops}" -DKILN_INFER_C_ONLY=${c_only}
      WORKING_DIRECTORY ${SOURCE_DIR}
      RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "configuring the ${what} selective build failed: ${out}${err}")
    endif()
    execute_process(COMMAND ${CMAKE_COMMAND} --build ${dir} --target kiln_infer kiln_run -j 2
      RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "building the ${what} selective kiln_infer failed: ${out}${err}")
    endif()

    file(GLOB lib ${dir}/src/libkiln_infer.so.*.*.*)
    execute_process(COMMAND ${CMAKE_COMMAND} -DLIB=${lib} -DSTRIP=${strip}
        -DOUT=${dir}/libkiln_infer.stripped.so -DMAX_BYTES=${MAX_BYTES}
        -P ${CMAKE_CURRENT_LIST_DIR}/check_size.cmake
      RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
    message(STATUS "${what}: ${out}${err}")
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "${what}: the selective library is over ${MAX_BYTES} bytes")
    endif()
    if(c_only)
      execute_process(COMMAND ${nm} -D --defined-only ${lib}
        RESULT_VARIABLE rc OUTPUT_VARIABLE symbols ERROR_VARIABLE err)
      string(REPLACE "\n" ";" exported "${symbols}")
      list(FILTER exported EXCLUDE REGEX "^$| kiln_[a-z0-9_]+$")
      if(NOT rc EQUAL 0 OR exported)
        message(FATAL_ERROR "${what}: exports more than the C API: ${exported}${err}")
      endif()
    endif()

    set(run ${emulator} ${dir}/bindings/c/kiln_run)
    foreach(model IN LISTS MODELS)
      get_filename_component(name ${model} NAME_WE)
      foreach(batch 1 5)
        execute_process(COMMAND ${run} ${model} ${batch} eigen
          RESULT_VARIABLE rc OUTPUT_VARIABLE selective ERROR_VARIABLE err)
        if(NOT rc EQUAL 0)
          message(FATAL_ERROR "kiln_run ${model} ${batch} (${what} selective build) failed: ${err}")
        endif()
        kiln_compare_runs("${name} batch ${batch} (${what} selective vs full)" ${dir} ${HOST_RUN}
          1e-5 "${reference_${name}_${batch}}" "${selective}" 1e-9)
      endforeach()
    endforeach()

    # What the selective build refuses, and how it says so.
    execute_process(COMMAND ${run} ${REFUSED_MODEL} 1 eigen
      RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
    if(rc EQUAL 0 OR NOT err MATCHES "configured without it \\(KILN_OPS=")
      message(FATAL_ERROR "${what}: ${REFUSED_MODEL} should fail to load, naming KILN_OPS; "
                          "exit ${rc}: ${err}")
    endif()
    message(STATUS "${what}: a model with other ops is refused: ${err}")
    execute_process(COMMAND ${run} --monitor ${PROFILE_MODEL} 10
      RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
    if(rc EQUAL 0 OR NOT err MATCHES "no drift monitor")
      message(FATAL_ERROR "${what}: kiln_run --monitor should fail without the monitor; "
                          "exit ${rc}: ${err}")
    endif()
    message(STATUS "${what}: the monitor is not built in: ${err}")
  endforeach()
endforeach()
