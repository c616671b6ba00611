# Fails when a C or C++ source of the tree differs from what clang-format (the repository's
# .clang-format) would make of it, and lists the files.
#   cmake -DCLANG_FORMAT=clang-format -DSOURCE_DIR=<repo> -P check_format.cmake
set(sources "")
foreach(dir include src kernels bindings tests examples benchmarks fuzz apps)
  file(GLOB_RECURSE found "${SOURCE_DIR}/${dir}/*.cpp" "${SOURCE_DIR}/${dir}/*.hpp"
       "${SOURCE_DIR}/${dir}/*.h" "${SOURCE_DIR}/${dir}/*.c")
  list(APPEND sources ${found})
endforeach()
list(LENGTH sources count)
if(count LESS 50)
  message(FATAL_ERROR "found only ${count} sources under ${SOURCE_DIR}: is it the repository?")
endif()
# One clang-format process for every file (one per file spent 40 s of a 43 s check starting
# processes); --Werror keeps going after a bad file and names each in its messages.
execute_process(COMMAND "${CLANG_FORMAT}" --dry-run --Werror "--style=file" ${sources}
  WORKING_DIRECTORY "${SOURCE_DIR}" RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
set(bad "")
if(NOT rc EQUAL 0)
  string(REGEX MATCHALL "[^\n]+:[0-9]+:[0-9]+: error: code should be clang-formatted" hits
         "${err}")
  foreach(hit IN LISTS hits)
    string(REGEX REPLACE ":[0-9]+:[0-9]+: error: .*$" "" file "${hit}")
    file(RELATIVE_PATH rel "${SOURCE_DIR}" "${file}")
    list(APPEND bad "${rel}")
  endforeach()
  list(REMOVE_DUPLICATES bad)
  if(NOT bad)
    message(FATAL_ERROR "clang-format failed (exit ${rc}):\n${err}")
  endif()
endif()
if(bad)
  list(JOIN bad "\n  " shown)
  message(FATAL_ERROR "not clang-formatted (run clang-format -i on them):\n  ${shown}")
endif()
message(STATUS "${count} sources clang-formatted")
