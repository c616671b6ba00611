# Fails if the library LIB defines symbols of autodiff (kiln::grad), optimizers
# (kiln::optim::), nn layers (kiln::nn::), training loops (kiln::TrainStep) or training
# kernels (*_backward*, scatter_add_rows, the training kernel registries). Shape rules of
# the training ops (kiln::internal::rule_*) are part of the op table and allowed, and so
# are the standard library's names (std::move_backward).
#   cmake -DNM=nm -DLIB=libkiln_infer.a -P check_symbols.cmake
cmake_minimum_required(VERSION 3.20)
if(NOT NM OR NOT LIB)
  message(FATAL_ERROR "usage: cmake -DNM=<nm> -DLIB=<library> -P check_symbols.cmake")
endif()
if(NOT EXISTS "${LIB}")
  message(FATAL_ERROR "'${LIB}' does not exist")
endif()
include("${CMAKE_CURRENT_LIST_DIR}/../../cmake/KilnNmLines.cmake")
kiln_nm_lines(lines "${NM}" "${LIB}" -C --defined-only)
list(LENGTH lines total)
if(total LESS 100)
  message(FATAL_ERROR "${NM} listed only ${total} lines for '${LIB}': is it the library?")
endif()
set(forbidden
  "kiln::grad\\("
  "kiln::optim::"
  "kiln::nn::"
  "kiln::TrainStep"
  "training_kernels"
  "cnn_training"
  "training_cnn"
  "scatter_add_rows"
  "_backward")
set(bad "")
foreach(line IN LISTS lines)
  # Shape rules of training ops live in the op table (kiln::internal::rule_*).
  string(REGEX REPLACE "kiln::internal::rule_[A-Za-z0-9_]+" "" checked "${line}")
  # So are the standard library's own names (std::move_backward and the like, which an
  # unoptimised Debug or sanitizer build leaves out of line); Kiln names in their template
  # arguments are still checked.
  string(REGEX REPLACE "std::[A-Za-z0-9_]+" "std::" checked "${checked}")
  foreach(pattern IN LISTS forbidden)
    if(checked MATCHES "${pattern}")
      list(APPEND bad "${line}")
      break()
    endif()
  endforeach()
endforeach()
list(LENGTH bad count)
if(count GREATER 0)
  list(JOIN bad "\n  " shown)
  message(FATAL_ERROR "'${LIB}' defines ${count} training symbols:\n  ${shown}")
endif()
message(STATUS "'${LIB}': ${total} nm lines, no training symbols")
