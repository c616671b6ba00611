# Runs `kiln train <SPEC> --data <DATA> --out <OUT> --json --quiet --run-dir <RUN_DIR>` and
# checks that it exits with 0, that the JSON it prints has test.<METRIC> >= MIN and that
# the recorded run (RUN_DIR, replaced) is complete.
#   cmake -DKILN=<kiln> -DSPEC=<spec.json> -DDATA=<file.csv> -DOUT=<model.kiln>
#         -DRUN_DIR=<folder> -DMETRIC=test_accuracy -DMIN=0.93 -P check_kiln_train.cmake
file(REMOVE_RECURSE ${RUN_DIR})
execute_process(COMMAND ${KILN} train ${SPEC} --data ${DATA} --out ${OUT} --json --quiet
  --run-dir ${RUN_DIR}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "kiln train exited with ${rc}: ${err}")
endif()
string(JSON value GET "${out}" test ${METRIC})
if(value LESS MIN)
  message(FATAL_ERROR "${METRIC}=${value} is below ${MIN}")
endif()
file(READ ${RUN_DIR}/run.json run)
string(JSON status GET "${run}" status)
string(JSON recorded GET "${run}" final ${METRIC})
if(NOT status STREQUAL "completed" OR NOT recorded STREQUAL value)
  message(FATAL_ERROR "${RUN_DIR}/run.json: status ${status}, ${METRIC} ${recorded} (want "
                      "completed, ${value})")
endif()
message(STATUS "kiln train ${SPEC}: ${METRIC}=${value} >= ${MIN}; run recorded in ${RUN_DIR}")
