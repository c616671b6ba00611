# MPI (Open MPI; Debian: libopenmpi-dev openmpi-bin) for Kiln::kiln_mpi, linked privately
# into that target alone: libkiln and libkiln_infer never depend on MPI. KILN_WITH_MPI
# defaults to ON where find_package(MPI) finds MPI's C interface (Kiln calls only the C API,
# which every MPI has) and OFF in cross builds; ON without MPI fails with the packages to
# install. Sets MPI::MPI_C, KilnPrivate::mpi (what kiln_mpi links) and MPIEXEC_EXECUTABLE.
set(_kiln_mpi_default OFF)
if(NOT CMAKE_CROSSCOMPILING)
  find_package(MPI QUIET COMPONENTS C)
  if(MPI_C_FOUND)
    set(_kiln_mpi_default ON)
  endif()
endif()
option(KILN_WITH_MPI "Build Kiln::kiln_mpi, data-parallel training over MPI" ${_kiln_mpi_default})
if(KILN_WITH_MPI)
  find_package(MPI COMPONENTS C)
  if(NOT MPI_C_FOUND)
    message(FATAL_ERROR "KILN_WITH_MPI is ON but MPI was not found (Debian: libopenmpi-dev "
                        "openmpi-bin); configure with -DKILN_WITH_MPI=OFF to build without it")
  endif()
  # kiln_mpi links MPI through this private name: an installed static Kiln names it in its
  # link interface and KilnConfig.cmake defines it from the consumer's own find_package(MPI)
  # (with its C or, in a C++-only project, its CXX component).
  add_library(KilnPrivate::mpi INTERFACE IMPORTED)
  target_link_libraries(KilnPrivate::mpi INTERFACE MPI::MPI_C)
  message(STATUS "Kiln: Kiln::kiln_mpi over MPI ${MPI_C_VERSION} (${MPIEXEC_EXECUTABLE})")
else()
  message(STATUS "Kiln: no Kiln::kiln_mpi (KILN_WITH_MPI=OFF)")
endif()
