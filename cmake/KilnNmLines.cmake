# kiln_nm_lines(<out-var> <nm> <library> <nm options>...): the library's nm listing as a
# CMake list of lines, made list-safe (";" becomes ",", "[...]" becomes "(...)", so that
# [abi:cxx11] reads (abi:cxx11) and lists split only at line ends). Fails naming the
# library when nm does. Used by the symbol checks in tests/symbols and tests/infer_symbols.
function(kiln_nm_lines out_var nm lib)
  execute_process(COMMAND ${nm} ${ARGN} "${lib}"
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${nm} failed on '${lib}' (${rc}): ${err}")
  endif()
  string(REPLACE ";" "," out "${out}")
  string(REPLACE "[" "(" out "${out}")
  string(REPLACE "]" ")" out "${out}")
  string(REPLACE "\n" ";" lines "${out}")
  set(${out_var} "${lines}" PARENT_SCOPE)
endfunction()
