# Fails unless every dynamic symbol the shared library LIB exports matches a pattern of the
# allow-list ALLOWED, and fails if any exported name mentions oneDNN (dnnl, mkldnn).
#   cmake -DNM=nm -DLIB=libkiln_infer.so -DALLOWED=kiln_infer.allowed -P check_exports.cmake
# ALLOWED holds one CMake regex per line over demangled names (nm -D -C), with `#` comments.
# "typeinfo for", "typeinfo name for", "vtable for" and "VTT for" are stripped before the
# match, so a class's pattern covers them. A pattern naming kiln::internal must match an
# exported symbol (the private list stays minimal: a stale entry fails).
cmake_minimum_required(VERSION 3.20)
foreach(var NM LIB ALLOWED)
  if(NOT ${var})
    message(FATAL_ERROR "usage: cmake -DNM=<nm> -DLIB=<shared library> -DALLOWED=<file> "
      "-P check_exports.cmake")
  endif()
endforeach()
foreach(file "${LIB}" "${ALLOWED}")
  if(NOT EXISTS "${file}")
    message(FATAL_ERROR "'${file}' does not exist")
  endif()
endforeach()

file(STRINGS "${ALLOWED}" allowed_lines)
set(patterns "")
foreach(line IN LISTS allowed_lines)
  string(REGEX REPLACE "(^|[ \t]+)#.*$" "" line "${line}")
  string(STRIP "${line}" line)
  if(NOT line STREQUAL "")
    list(APPEND patterns "${line}")
  endif()
endforeach()
list(LENGTH patterns pattern_count)
if(pattern_count EQUAL 0)
  message(FATAL_ERROR "'${ALLOWED}' lists no patterns")
endif()

execute_process(COMMAND ${NM} -D -C --defined-only "${LIB}"
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${NM} failed on '${LIB}' (${rc}): ${err}")
endif()
# List-safe lines: no semicolons, and no brackets ([abi:cxx11] reads (abi:cxx11)).
string(REPLACE ";" "," out "${out}")
string(REPLACE "[" "(" out "${out}")
string(REPLACE "]" ")" out "${out}")
string(REPLACE "\n" ";" lines "${out}")

set(names "")
foreach(line IN LISTS lines)
  # "<address> <type> <name>"; type A is a symbol-version definition, not a symbol.
  if(line MATCHES "^[0-9a-fA-F]* *([A-Za-z]) (.*)$")
    if(NOT CMAKE_MATCH_1 STREQUAL "A")
      list(APPEND names "${CMAKE_MATCH_2}")
    endif()
  endif()
endforeach()
list(LENGTH names total)
if(total LESS 20)
  message(FATAL_ERROR "${NM} listed only ${total} exported symbols in '${LIB}': "
    "is it a shared library?")
endif()

set(not_allowed "")
set(onednn "")
set(used "")
foreach(name IN LISTS names)
  if(name MATCHES "dnnl|mkldnn")
    list(APPEND onednn "${name}")
  endif()
  string(REGEX REPLACE "^(typeinfo name for|typeinfo for|vtable for|VTT for) " "" checked
    "${name}")
  set(ok OFF)
  foreach(pattern IN LISTS patterns)
    if(checked MATCHES "${pattern}")
      set(ok ON)
      list(APPEND used "${pattern}")
      break()
    endif()
  endforeach()
  if(NOT ok)
    list(APPEND not_allowed "${name}")
  endif()
endforeach()

set(stale "")
foreach(pattern IN LISTS patterns)
  if(pattern MATCHES "kiln::internal")
    list(FIND used "${pattern}" at)
    if(at EQUAL -1)
      list(APPEND stale "${pattern}")
    endif()
  endif()
endforeach()

get_filename_component(lib_name "${LIB}" NAME)
set(problems "")
foreach(kind not_allowed onednn stale)
  list(LENGTH ${kind} n)
  if(n GREATER 0)
    list(JOIN ${kind} "\n  " shown)
    if(kind STREQUAL "not_allowed")
      string(APPEND problems "${lib_name} exports ${n} symbols no pattern of "
        "${ALLOWED} allows (hide them, or make them API):\n  ${shown}\n")
    elseif(kind STREQUAL "onednn")
      string(APPEND problems "${lib_name} exports ${n} symbols that name oneDNN "
        "(no oneDNN type may appear in an exported signature):\n  ${shown}\n")
    else()
      string(APPEND problems "${n} kiln::internal entries of ${ALLOWED} match no "
        "exported symbol (remove them):\n  ${shown}\n")
    endif()
  endif()
endforeach()
if(problems)
  message(FATAL_ERROR "${problems}")
endif()
message(STATUS "${lib_name}: all ${total} exported symbols allowed, none names oneDNN")
