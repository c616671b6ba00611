# Installs Kiln's libraries, public headers and CMake package files, so that
#   find_package(Kiln 0.1 REQUIRED)
#   target_link_libraries(app PRIVATE Kiln::kiln)   # or Kiln::kiln_infer
# works against the installed tree. Included from the top-level CMakeLists.txt when
# KILN_INSTALL is ON.
include(CMakePackageConfigHelpers)
include(GNUInstallDirs)

set(KILN_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/Kiln"
    CACHE STRING "Where KilnConfig.cmake is installed, relative to the prefix")

install(TARGETS kiln_infer kiln
  EXPORT KilnTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT Kiln_Development
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT Kiln_Runtime
          NAMELINK_COMPONENT Kiln_Development
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT Kiln_Runtime
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# Kiln::kiln_mpi has an export set of its own, loaded by KilnConfig.cmake only when the
# "mpi" component is asked for: a consumer of Kiln::kiln never needs MPI.
if(KILN_WITH_MPI)
  install(TARGETS kiln_mpi
    EXPORT KilnMpiTargets
    ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT Kiln_Development
    LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} COMPONENT Kiln_Runtime
            NAMELINK_COMPONENT Kiln_Development
    RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT Kiln_Runtime
    INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  install(EXPORT KilnMpiTargets
    NAMESPACE Kiln::
    FILE KilnMpiTargets.cmake
    DESTINATION ${KILN_INSTALL_CMAKEDIR}
    COMPONENT Kiln_Development)
endif()

# Public headers only: include/ holds nothing else (private headers live in src/).
install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/kiln"
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  COMPONENT Kiln_Development
  FILES_MATCHING PATTERN "*.hpp")

install(EXPORT KilnTargets
  NAMESPACE Kiln::
  FILE KilnTargets.cmake
  DESTINATION ${KILN_INSTALL_CMAKEDIR}
  COMPONENT Kiln_Development)

# What the installed targets' link interface needs from the consumer's side. Static
# libraries carry their private dependencies ($<LINK_ONLY:...>), shared ones do not.
get_target_property(_kiln_type kiln_infer TYPE)
if(_kiln_type STREQUAL "STATIC_LIBRARY")
  set(KILN_STATIC ON)
else()
  set(KILN_STATIC OFF)
endif()
set(KILN_CONFIG_WITH_ONEDNN ${KILN_ONEDNN})
set(KILN_CONFIG_WITH_SQLITE ${KILN_WITH_SQLITE})
set(KILN_CONFIG_WITH_MPI ${KILN_WITH_MPI})

configure_package_config_file(
  "${CMAKE_CURRENT_LIST_DIR}/KilnConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/KilnConfig.cmake"
  INSTALL_DESTINATION ${KILN_INSTALL_CMAKEDIR})
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/KilnConfigVersion.cmake"
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMajorVersion)

install(FILES
  "${PROJECT_BINARY_DIR}/KilnConfig.cmake"
  "${PROJECT_BINARY_DIR}/KilnConfigVersion.cmake"
  DESTINATION ${KILN_INSTALL_CMAKEDIR}
  COMPONENT Kiln_Development)

install(FILES "${PROJECT_SOURCE_DIR}/LICENSE"
  DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/kiln
  COMPONENT Kiln_Runtime)
