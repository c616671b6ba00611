# Finds what Kiln builds with. Eigen is header-only and private; oneDNN is optional.
find_package(Eigen3 3.4 REQUIRED NO_MODULE)
find_package(OpenMP REQUIRED COMPONENTS CXX)
find_package(Threads REQUIRED)

find_package(dnnl QUIET CONFIG)
cmake_dependent_option(KILN_WITH_ONEDNN "Use oneDNN kernels (x86 servers)" ON "dnnl_FOUND" OFF)
if(KILN_WITH_ONEDNN)
  message(STATUS "Kiln: oneDNN ${dnnl_VERSION} kernels enabled")
else()
  message(STATUS "Kiln: oneDNN kernels disabled (Eigen and reference kernels only)")
endif()

# Warnings and sanitizers for Kiln's own targets.
function(kiln_set_warnings target)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
      -Wnon-virtual-dtor -Wcast-align -Wunused -Woverloaded-virtual)
    if(KILN_WERROR)
      target_compile_options(${target} PRIVATE -Werror)
    endif()
  endif()
  if(KILN_SANITIZE)
    list(JOIN KILN_SANITIZE "," _san)
    target_compile_options(${target} PRIVATE -fsanitize=${_san} -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=${_san})
  endif()
endfunction()

# Kernels are built for the machine that builds them unless told otherwise
# (set KILN_ARCH_FLAGS to "" for a portable build, or e.g. -march=x86-64-v3).
if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64" AND NOT CMAKE_CROSSCOMPILING)
  set(_kiln_arch_default "-march=native")
else()
  set(_kiln_arch_default "")
endif()
set(KILN_ARCH_FLAGS "${_kiln_arch_default}" CACHE STRING "Architecture flags for Kiln's kernels")
