# Installs the Kiln build tree BUILD_DIR into a fresh PREFIX and checks what got there:
# both libraries, the package files, and public headers free of Eigen, oneDNN, cereal,
# SQLite and MPI.
#   cmake -DBUILD_DIR=<dir> -DPREFIX=<dir> -DCONFIG=<cfg> -P install_tree.cmake
file(REMOVE_RECURSE "${PREFIX}")
execute_process(
  COMMAND ${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${PREFIX}" --config "${CONFIG}"
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install ${BUILD_DIR} failed (${rc})")
endif()

foreach(pattern "*/cmake/Kiln/KilnConfig.cmake" "*/cmake/Kiln/KilnConfigVersion.cmake"
                "*/cmake/Kiln/KilnTargets.cmake" "*libkiln_infer*" "*libkiln.*")
  file(GLOB_RECURSE found "${PREFIX}/${pattern}")
  if(NOT found)
    message(FATAL_ERROR "nothing matching ${pattern} was installed under ${PREFIX}")
  endif()
endforeach()

foreach(header kiln/version.hpp kiln/export.hpp kiln/ops.hpp kiln/autodiff.hpp
               kiln/graph/graph.hpp kiln/runtime/executable.hpp kiln/core/tensor.hpp)
  if(NOT EXISTS "${PREFIX}/include/${header}")
    message(FATAL_ERROR "public header ${header} was not installed")
  endif()
endforeach()

# Public headers must not need Kiln's private dependencies or private headers.
file(GLOB_RECURSE headers "${PREFIX}/include/kiln/*")
foreach(h ${headers})
  file(STRINGS "${h}" bad REGEX "#[ \t]*include[ \t]*[<\"](Eigen|unsupported/Eigen|dnnl|oneapi|cereal|sqlite3|mpi\\.h[\">]|internal/)")
  if(bad)
    message(FATAL_ERROR "installed header ${h} includes a private dependency: ${bad}")
  endif()
endforeach()
list(LENGTH headers n)
message(STATUS "installed Kiln into ${PREFIX} (${n} public headers)")
