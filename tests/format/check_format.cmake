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
set(bad "")
foreach(file IN LISTS sources)
  execute_process(COMMAND "${CLANG_FORMAT}" --dry-run --Werror "--style=file" "${file}"
    WORKING_DIRECTORY "${SOURCE_DIR}" RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    file(RELATIVE_PATH rel "${SOURCE_DIR}" "${file}")
    list(APPEND bad "${rel}")
  endif()
endforeach()
if(bad)
  list(JOIN bad "\n  " shown)
  message(FATAL_ERROR "not clang-formatted (run clang-format -i on them):\n  ${shown}")
endif()
message(STATUS "${count} sources clang-formatted")
