# Cross-compiles Kiln for 64-bit Arm Linux with Debian's g++-aarch64-linux-gnu; tests and
# examples run under qemu-aarch64 (Debian's qemu-user). Eigen headers come from the host
# (they are architecture-independent); GoogleTest is built from /usr/src/googletest.
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(KILN_AARCH64_TRIPLE aarch64-linux-gnu)
set(KILN_AARCH64_SYSROOT /usr/${KILN_AARCH64_TRIPLE})
set(CMAKE_C_COMPILER ${KILN_AARCH64_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${KILN_AARCH64_TRIPLE}-g++)
find_program(CMAKE_STRIP ${KILN_AARCH64_TRIPLE}-strip)

# Target libraries from the cross sysroot; headers and CMake packages (Eigen) may also
# come from the host, which is fine for header-only, architecture-independent packages.
list(APPEND CMAKE_FIND_ROOT_PATH ${KILN_AARCH64_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

find_program(KILN_QEMU_AARCH64 qemu-aarch64)
if(KILN_QEMU_AARCH64 AND NOT CMAKE_CROSSCOMPILING_EMULATOR)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${KILN_QEMU_AARCH64} -L ${KILN_AARCH64_SYSROOT})
endif()
