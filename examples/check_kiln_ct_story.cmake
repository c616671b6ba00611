# The MLOps scenario with the kiln command (what the README shows), in a fresh folder WORK:
#   mlops_digits --prepare WORK            data files, spec and pipeline files
#   kiln ct WORK/bootstrap.json            v1 trained on the clean rows, promoted    (exit 0)
#   mlops_digits --monitor WORK            digits@production on inverted rows -> WORK/drift.json
#   kiln drift WORK/drift.json             drift detected                           (exit 6)
#   kiln ct WORK/retrain_on_drift.json     v2 promoted                              (exit 0)
#   kiln ct WORK/shuffled_labels.json      rejected by the gate                     (exit 10)
#   kiln ct WORK/retrain_on_drift.json     skipped: the snapshot was of v1          (exit 11)
#   kiln registry --registry WORK/models list digits    two versions, v2 in production
#   serve_story.sh KILN WORK               kiln serve digits@production answers as v2  (exit 0)
#   cmake -DKILN=<kiln> -DEXAMPLE=<mlops_digits> -DWORK=<dir> -P check_kiln_ct_story.cmake
file(REMOVE_RECURSE "${WORK}")
function(step expected_rc expected_output)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  string(REPLACE ";" " " cmd "${ARGN}")
  message("$ ${cmd}\n${out}${err}")
  if(NOT rc EQUAL expected_rc)
    message(FATAL_ERROR "exit code ${rc}, expected ${expected_rc}")
  endif()
  if(NOT out MATCHES "${expected_output}")
    message(FATAL_ERROR "the output does not match '${expected_output}'")
  endif()
endfunction()
step(0 "wrote the data" ${EXAMPLE} --prepare ${WORK})
step(0 "promote: +digits@production -> v1" ${KILN} ct ${WORK}/bootstrap.json)
step(0 "DRIFT" ${EXAMPLE} --monitor ${WORK})
step(6 "" ${KILN} drift ${WORK}/drift.json)
step(0 "promote: +digits@production -> v2 \\(was v1\\)" ${KILN} ct ${WORK}/retrain_on_drift.json)
step(10 "reason: accuracy [0-9.]+ < minimum 0.9" ${KILN} ct ${WORK}/shuffled_labels.json)
step(11 "already replaced" ${KILN} ct ${WORK}/retrain_on_drift.json)
step(0 "digits:2 [^\n]*\\[production\\]" ${KILN} registry --registry ${WORK}/models list digits)
step(0 "served by digits:2, classes \\[[^]]+\\] = kiln predict"
     bash ${CMAKE_CURRENT_LIST_DIR}/serve_story.sh ${KILN} ${WORK})
