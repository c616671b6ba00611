# Runs an example and checks that it exits with 0 and that its last line is
# <METRIC>=<value> (METRIC defaults to test_accuracy) with value >= MIN_ACCURACY.
#   cmake -DEXE=<program> -DARGS=<arg;...> -DMIN_ACCURACY=0.96 [-DMETRIC=test_r2] -P check_accuracy.cmake
if(NOT METRIC)
  set(METRIC test_accuracy)
endif()
include(${CMAKE_CURRENT_LIST_DIR}/run_example.cmake)
string(STRIP "${out}" out)
string(REGEX MATCH "[^\n]*$" last_line "${out}")
if(NOT last_line MATCHES "^${METRIC}=(-?[0-9]+(\\.[0-9]+)?)$")
  message(FATAL_ERROR "last line is not ${METRIC}=<value>: '${last_line}'")
endif()
set(accuracy "${CMAKE_MATCH_1}")
# CMake compares floating-point strings with LESS as numbers.
if(accuracy LESS MIN_ACCURACY)
  message(FATAL_ERROR "${METRIC}=${accuracy} is below ${MIN_ACCURACY}")
endif()
message(STATUS "${METRIC}=${accuracy} >= ${MIN_ACCURACY}")
