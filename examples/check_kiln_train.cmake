# Runs `kiln train <SPEC> --data <DATA> --out <OUT> --json --quiet` and checks that it exits
# with 0 and that the JSON it prints has test.<METRIC> >= MIN.
#   cmake -DKILN=<kiln> -DSPEC=<spec.json> -DDATA=<file.csv> -DOUT=<model.kiln>
#         -DMETRIC=test_accuracy -DMIN=0.93 -P check_kiln_train.cmake
execute_process(COMMAND ${KILN} train ${SPEC} --data ${DATA} --out ${OUT} --json --quiet
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "kiln train exited with ${rc}: ${err}")
endif()
string(JSON value GET "${out}" test ${METRIC})
if(value LESS MIN)
  message(FATAL_ERROR "${METRIC}=${value} is below ${MIN}")
endif()
message(STATUS "kiln train ${SPEC}: ${METRIC}=${value} >= ${MIN}")
