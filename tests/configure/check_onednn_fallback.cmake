# Configures Kiln (libraries only) with oneDNN's package configuration made unloadable
# (dnnl_DIR pointing at DNNL_DIR) and checks both outcomes:
#   KILN_WITH_ONEDNN=AUTO  configure succeeds, prints the one-line reason and the packages
#                          to install, and builds without oneDNN (KILN_ONEDNN_ENABLED=OFF);
#   KILN_WITH_ONEDNN=ON    configure fails, with the same line.
#   cmake -DSOURCE_DIR=.. -DWORK_DIR=.. -DDNNL_DIR=.. -DGENERATOR=.. -DCXX=.. [-DMAKE=..]
#         -P check_onednn_fallback.cmake
set(expected_line "Kiln: oneDNN kernels unavailable: its package configuration in ${DNNL_DIR} failed to load: ")
set(expected_packages "Install the Debian packages libdnnl-dev ocl-icd-opencl-dev for them.")

function(configure mode out_rc out_text)
  set(dir "${WORK_DIR}/${mode}")
  file(REMOVE_RECURSE "${dir}")
  set(args -S "${SOURCE_DIR}" -B "${dir}" -G "${GENERATOR}" "-DCMAKE_CXX_COMPILER=${CXX}"
    "-Ddnnl_DIR=${DNNL_DIR}" "-DKILN_WITH_ONEDNN=${mode}" -DKILN_BUILD_TESTS=OFF
    -DKILN_BUILD_EXAMPLES=OFF -DKILN_BUILD_BENCHMARKS=OFF -DKILN_INSTALL=OFF)
  if(MAKE)
    list(APPEND args "-DCMAKE_MAKE_PROGRAM=${MAKE}")
  endif()
  execute_process(COMMAND "${CMAKE_COMMAND}" ${args}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  set(${out_rc} ${rc} PARENT_SCOPE)
  set(${out_text} "${out}${err}" PARENT_SCOPE)
endfunction()

function(expect_line mode text)
  string(FIND "${text}" "${expected_line}" at)
  string(FIND "${text}" "${expected_packages}" at_packages)
  if(at EQUAL -1 OR at_packages EQUAL -1)
    message(FATAL_ERROR "KILN_WITH_ONEDNN=${mode}: the one-line reason is missing; output:\n${text}")
  endif()
  # One line: the reason and the packages to install are not wrapped apart.
  string(SUBSTRING "${text}" ${at} -1 rest)
  string(REGEX MATCH "^[^\n]*" line "${rest}")
  string(FIND "${line}" "${expected_packages}" in_line)
  if(in_line EQUAL -1)
    message(FATAL_ERROR "KILN_WITH_ONEDNN=${mode}: the reason is not one line: '${line}'")
  endif()
  message(STATUS "KILN_WITH_ONEDNN=${mode}: ${line}")
endfunction()

configure(AUTO rc text)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "KILN_WITH_ONEDNN=AUTO: configure failed (${rc}) instead of falling back:\n${text}")
endif()
expect_line(AUTO "${text}")
if(NOT text MATCHES "Using the Eigen kernels")
  message(FATAL_ERROR "KILN_WITH_ONEDNN=AUTO: does not say the Eigen kernels are used:\n${text}")
endif()
load_cache("${WORK_DIR}/AUTO" READ_WITH_PREFIX cached_ KILN_ONEDNN_ENABLED)
if(NOT cached_KILN_ONEDNN_ENABLED STREQUAL "OFF")
  message(FATAL_ERROR "KILN_WITH_ONEDNN=AUTO: KILN_ONEDNN_ENABLED is '${cached_KILN_ONEDNN_ENABLED}', expected OFF")
endif()

configure(ON rc text)
if(rc EQUAL 0)
  message(FATAL_ERROR "KILN_WITH_ONEDNN=ON: configure succeeded without a loadable oneDNN:\n${text}")
endif()
expect_line(ON "${text}")
if(NOT text MATCHES "KILN_WITH_ONEDNN=ON requires them")
  message(FATAL_ERROR "KILN_WITH_ONEDNN=ON: the failure does not say oneDNN was required:\n${text}")
endif()
