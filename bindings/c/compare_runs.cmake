# kiln_compare_runs(LABEL WORK_DIR COMPARE_RUN TOLERANCE HOST_OUTPUT TARGET_OUTPUT
#                   [ABS_TOLERANCE]): pairs the output lines of two kiln_run runs of the same
# model and inputs (headers must match exactly; values within TOLERANCE relative, or within
# ABS_TOLERANCE, checked by `COMPARE_RUN --compare`, since CMake's math is integer only).
# Fails the script on any difference. Used by the edge checks (edge_check.cmake,
# selective_check.cmake).
function(kiln_compare_runs label work_dir compare_run tolerance host target)
  set(abs_tolerance ${ARGN})
  string(REPLACE "\n" ";" host "${host}")
  string(REPLACE "\n" ";" target "${target}")
  list(LENGTH host n_host)
  list(LENGTH target n_target)
  if(NOT n_host EQUAL n_target)
    message(FATAL_ERROR "${label}: ${n_host} lines from the reference run, ${n_target} from this one")
  endif()
  set(lines "")
  math(EXPR last "${n_host} - 1")
  set(values 0)
  foreach(i RANGE ${last})
    list(GET host ${i} a)
    list(GET target ${i} b)
    if(a MATCHES "^output")
      if(NOT a STREQUAL b)
        message(FATAL_ERROR "${label}: header '${a}' in the reference run, '${b}' in this one")
      endif()
    elseif(NOT a STREQUAL "")
      string(APPEND lines "${a} ${b}\n")
      math(EXPR values "${values} + 1")
    endif()
  endforeach()
  string(MAKE_C_IDENTIFIER "${label}" file)
  file(WRITE ${work_dir}/${file}.txt "${lines}")
  execute_process(COMMAND ${compare_run} --compare ${work_dir}/${file}.txt ${tolerance} ${abs_tolerance}
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${label}: the outputs differ: ${out}${err}")
  endif()
  message(STATUS "${label}: ${values} values agree: ${out}")
endfunction()
