# Runs an example and checks that it exits with 0 and that its output matches every regular
# expression of EXPECT (a ;-separated list).
#   cmake -DEXE=<program> -DARGS=<arg;...> "-DEXPECT=re1;re2" -P check_output.cmake
include(${CMAKE_CURRENT_LIST_DIR}/run_example.cmake)
foreach(re IN LISTS EXPECT)
  if(NOT out MATCHES "${re}")
    message(FATAL_ERROR "the output does not match '${re}'")
  endif()
endforeach()
