# Configures the consumer project against the installed static Kiln with the directory of one
# of its shared dependencies hidden (CMAKE_IGNORE_PATH) and expects find_package(Kiln) to fail
# with a message that names the Debian package to install. Libraries found before it in that
# directory (oneDNN's, when SQLite's is hidden) are given by path (-D<var>=<path> in FOUND).
#   cmake -DLIBRARY=<name in messages> -DPACKAGE=<Debian package> -DREASON=<regex>
#         -DCONSUMER_DIR=.. -DWORK_DIR=.. -DPREFIX=.. -DIGNORE_DIR=.. -DGENERATOR=.. -DCXX=..
#         [-DMAKE=..] [-DFOUND=var=path;...] -P missing_library.cmake
# REASON is the start of Kiln's explanation, matched up to the package name and printed.
file(REMOVE_RECURSE "${WORK_DIR}")
# With merged /usr, /lib/<arch> is the same directory reached by another path.
set(ignore "${IGNORE_DIR}")
if(IGNORE_DIR MATCHES "^/usr(/.+)$")
  list(APPEND ignore "${CMAKE_MATCH_1}")
endif()
string(REPLACE ";" "\\;" ignore "${ignore}")  # one argument below
set(args -S "${CONSUMER_DIR}" -B "${WORK_DIR}" -G "${GENERATOR}" "-DCMAKE_CXX_COMPILER=${CXX}"
  "-DCMAKE_PREFIX_PATH=${PREFIX}" "-DCMAKE_IGNORE_PATH=${ignore}")
foreach(found IN LISTS FOUND)
  list(APPEND args "-D${found}")
endforeach()
if(MAKE)
  list(APPEND args "-DCMAKE_MAKE_PROGRAM=${MAKE}")
endif()
execute_process(COMMAND "${CMAKE_COMMAND}" ${args}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0)
  message(FATAL_ERROR "the consumer configured although ${LIBRARY}'s library was hidden:\n${out}${err}")
endif()
string(REGEX REPLACE "[ \t\n]+" " " text "${out}${err}")
if(NOT text MATCHES "install the Debian package ${PACKAGE}")
  message(FATAL_ERROR "the failure does not name the package to install:\n${out}${err}")
endif()
string(REGEX MATCH "${REASON}.*package ${PACKAGE}" reason "${text}")
message(STATUS "consumer without ${LIBRARY}'s library: ${reason}")
