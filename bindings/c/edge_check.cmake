# aarch64 vs x86: cross-builds kiln_infer and kiln_run for aarch64 (no oneDNN) into
# CROSS_DIR, runs the host's kiln_run and the aarch64 one under qemu on the same model
# files and inputs (an MLP, a CNN and a sequence model), both with the Eigen kernels, and
# compares every output within 1e-5 relative (|a - b| <= 1e-5 * max(|a|, |b|), or both
# below 1e-30). Then the drift monitor:
# `kiln_run --monitor` on the MLP with a reference profile, whose statistics (KS D,
# chi-squared, p-values, PSI per feature) must agree within 1e-9 relative.
#   cmake -DSOURCE_DIR=.. -DCROSS_DIR=.. -DHOST_RUN=.. -DMODELS_DIR=.. -DQEMU=.. -DGENERATOR=..
#         -P edge_check.cmake
cmake_minimum_required(VERSION 3.25)
include(${CMAKE_CURRENT_LIST_DIR}/compare_runs.cmake)
set(toolchain ${SOURCE_DIR}/cmake/toolchains/aarch64-linux-gnu.cmake)
if(NOT EXISTS ${CROSS_DIR}/CMakeCache.txt)
  execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE_DIR} -B ${CROSS_DIR} -G ${GENERATOR}
      -DCMAKE_TOOLCHAIN_FILE=${toolchain} -DCMAKE_BUILD_TYPE=Release
      -DKILN_WITH_ONEDNN=OFF -DKILN_BUILD_TESTS=OFF -DKILN_BUILD_EXAMPLES=OFF
      -DKILN_BUILD_BENCHMARKS=OFF -DKILN_INSTALL=OFF
    RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    file(REMOVE ${CROSS_DIR}/CMakeCache.txt)
    message(FATAL_ERROR "configuring the aarch64 build failed")
  endif()
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${CROSS_DIR} --target kiln_run -j 2
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "building kiln_run for aarch64 failed")
endif()

set(target_run ${CROSS_DIR}/bindings/c/kiln_run)
if(NOT EXISTS ${target_run})
  set(target_run ${CROSS_DIR}/kiln_run)
endif()

# Runs: models mlp, cnn and sequence (LSTM, attention, encoder, GRU over lengths 0 to 9) at
# batch 1 and 5 (outputs, 1e-5), then "monitor" (statistics, 1e-9).
foreach(run mlp:1 mlp:5 cnn:1 cnn:5 sequence:1 sequence:5 sequence:13 monitor:400)
  string(REPLACE ":" ";" run "${run}")
  list(GET run 0 model)
  list(GET run 1 batch)
  if(model STREQUAL "monitor")
    set(args --monitor ${MODELS_DIR}/mlp_profile.kiln ${batch})
    set(tolerance 1e-9)
  else()
    set(args ${MODELS_DIR}/${model}.kiln ${batch} eigen)
    set(tolerance 1e-5)
  endif()
  set(file "${args}")
  execute_process(COMMAND ${HOST_RUN} ${args}
    RESULT_VARIABLE rc OUTPUT_VARIABLE host ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "x86 kiln_run ${file} failed: ${err}")
  endif()
  execute_process(COMMAND ${QEMU} -L /usr/aarch64-linux-gnu ${target_run} ${args}
    RESULT_VARIABLE rc OUTPUT_VARIABLE target ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "aarch64 kiln_run ${file} under qemu failed: ${err}")
  endif()
  kiln_compare_runs("${model} batch ${batch} (x86 vs aarch64)" ${CROSS_DIR} ${HOST_RUN}
    ${tolerance} "${host}" "${target}")
endforeach()
