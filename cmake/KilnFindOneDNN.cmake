# oneDNN (the x86 server kernels) is optional, and looking for it must never break the
# configure step. KILN_WITH_ONEDNN is
#   AUTO  (default) use oneDNN where its package configuration loads, else the Eigen kernels;
#   ON    require it: configure fails with the reason and the packages to install;
#   OFF   never look for it.
# A package configuration may stop the configure with a fatal error instead of reporting
# "not found": Debian's dnnl-config.cmake does when OpenCL's development files
# (ocl-icd-opencl-dev, only a recommended package of libdnnl-dev) are missing. So it is
# first loaded in a throw-away configure of cmake/onednn-probe, and loaded here only if it
# loaded there. Sets KILN_ONEDNN (ON or OFF) and, when ON, the KilnPrivate::dnnl target
# Kiln links with and KILN_DNNL_SONAME / KILN_DNNL_LIBDIR for the installed package.
kiln_auto_option(KILN_WITH_ONEDNN
  "Use oneDNN kernels (x86 servers): AUTO (where it loads), ON (required) or OFF"
  _kiln_onednn_mode)

set(KILN_ONEDNN_PACKAGES "libdnnl-dev ocl-icd-opencl-dev")

# Runs the probe; sets <ok> to TRUE or FALSE and <reason> to one line saying why it failed.
function(kiln_probe_onednn ok reason)
  set(dir "${CMAKE_BINARY_DIR}/CMakeFiles/kiln-onednn-probe")
  file(REMOVE_RECURSE "${dir}")
  set(args -S "${CMAKE_CURRENT_LIST_DIR}/onednn-probe" -B "${dir}" -G "${CMAKE_GENERATOR}"
           "-DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER}")
  foreach(var CMAKE_MAKE_PROGRAM CMAKE_TOOLCHAIN_FILE CMAKE_SYSROOT CMAKE_PREFIX_PATH
              CMAKE_FIND_ROOT_PATH dnnl_DIR dnnl_ROOT)
    if(DEFINED ${var} AND NOT "${${var}}" STREQUAL "")
      string(REPLACE ";" "\\;" value "${${var}}")  # a list stays one argument
      list(APPEND args "-D${var}=${value}")
    endif()
  endforeach()
  execute_process(COMMAND "${CMAKE_COMMAND}" ${args}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc EQUAL 0)
    set(${ok} TRUE PARENT_SCOPE)
    set(${reason} "" PARENT_SCOPE)
    return()
  endif()
  set(${ok} FALSE PARENT_SCOPE)
  if(err MATCHES "provided by \"dnnl\"")
    set(${reason} "oneDNN is not installed (no dnnl-config.cmake found)" PARENT_SCOPE)
    return()
  endif()
  # The first error's text, on one line: "Could NOT find OpenCL (missing: ...)".
  string(REGEX MATCH "CMake Error[^\n]*\n(([ \t]+[^\n]*\n)+)" _ "${err}\n")
  string(REGEX REPLACE "[ \t\n]+" " " detail "${CMAKE_MATCH_1}")
  string(STRIP "${detail}" detail)
  string(REGEX REPLACE " Call Stack .*" "" detail "${detail}")
  if(detail STREQUAL "")
    string(REGEX REPLACE "[ \t\n]+" " " detail "${err}")
  endif()
  string(SUBSTRING "${detail}" 0 240 detail)
  string(REGEX REPLACE "[. ]+$" "" detail "${detail}")
  load_cache("${dir}" READ_WITH_PREFIX _probe_ dnnl_DIR)
  set(${reason} "its package configuration in ${_probe_dnnl_DIR} failed to load: ${detail}"
      PARENT_SCOPE)
endfunction()

set(KILN_ONEDNN OFF)
if(_kiln_onednn_mode STREQUAL "OFF")
  message(STATUS "Kiln: oneDNN kernels off (KILN_WITH_ONEDNN=OFF); using the Eigen kernels")
else()
  kiln_probe_onednn(_kiln_onednn_ok _kiln_onednn_reason)
  if(_kiln_onednn_ok)
    find_package(dnnl CONFIG REQUIRED)
    set(KILN_ONEDNN ON)
    # Kiln's libraries link oneDNN through this private name. An installed static Kiln
    # names it in its link interface, and KilnConfig.cmake defines it from the shared
    # library alone, so consumers need neither oneDNN's CMake files nor OpenCL's.
    add_library(KilnPrivate::dnnl INTERFACE IMPORTED)
    target_link_libraries(KilnPrivate::dnnl INTERFACE DNNL::dnnl)
    get_target_property(_kiln_dnnl_configs DNNL::dnnl IMPORTED_CONFIGURATIONS)
    set(_kiln_dnnl_suffix "")
    if(_kiln_dnnl_configs)
      list(GET _kiln_dnnl_configs 0 _kiln_dnnl_config)
      set(_kiln_dnnl_suffix "_${_kiln_dnnl_config}")
    endif()
    get_target_property(_kiln_dnnl_location DNNL::dnnl IMPORTED_LOCATION${_kiln_dnnl_suffix})
    get_target_property(KILN_DNNL_SONAME DNNL::dnnl IMPORTED_SONAME${_kiln_dnnl_suffix})
    get_filename_component(KILN_DNNL_LIBDIR "${_kiln_dnnl_location}" DIRECTORY)
    if(NOT KILN_DNNL_SONAME)
      get_filename_component(KILN_DNNL_SONAME "${_kiln_dnnl_location}" NAME)
    endif()
    message(STATUS "Kiln: oneDNN ${dnnl_VERSION} kernels enabled (${dnnl_DIR})")
  else()
    # One line, the same in both modes (a FATAL_ERROR message would be re-wrapped).
    set(_kiln_onednn_line "Kiln: oneDNN kernels unavailable: ${_kiln_onednn_reason}. Install the Debian packages ${KILN_ONEDNN_PACKAGES} for them.")
    if(_kiln_onednn_mode STREQUAL "ON")
      message(NOTICE "${_kiln_onednn_line} KILN_WITH_ONEDNN=ON requires them.")
      message(FATAL_ERROR "KILN_WITH_ONEDNN=ON but oneDNN cannot be used (see the line above). "
        "Install ${KILN_ONEDNN_PACKAGES}, or configure with -DKILN_WITH_ONEDNN=OFF or AUTO "
        "to build with the Eigen kernels.")
    endif()
    message(NOTICE "${_kiln_onednn_line} Using the Eigen kernels.")
  endif()
endif()
# What was decided, for scripts that read CMakeCache.txt (benchmarks/compare/run.sh).
set(KILN_ONEDNN_ENABLED ${KILN_ONEDNN} CACHE INTERNAL "oneDNN kernels built (ON/OFF)")
