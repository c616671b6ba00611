# Finds what Kiln builds with. Eigen is header-only and private; oneDNN is optional
# (KilnFindOneDNN.cmake sets KILN_ONEDNN).
find_package(Eigen3 3.4 REQUIRED NO_MODULE)
find_package(OpenMP REQUIRED COMPONENTS CXX)
find_package(Threads REQUIRED)

# A cache option that is AUTO (decided again at every configure by what the machine has),
# ON (required) or OFF; any CMake boolean spelling of ON and OFF works too. Sets <out> to
# AUTO, ON or OFF.
function(kiln_auto_option name doc out)
  set(${name} AUTO CACHE STRING "${doc}")
  set_property(CACHE ${name} PROPERTY STRINGS AUTO ON OFF)
  string(TOUPPER "${${name}}" mode)
  if(NOT mode STREQUAL "AUTO")
    if(${name})
      set(mode ON)
    else()
      set(mode OFF)
    endif()
  endif()
  set(${out} ${mode} PARENT_SCOPE)
endfunction()

include(KilnFindOneDNN)
include(KilnFindMPI)

# Warnings for Kiln's own targets.
function(kiln_set_warnings target)
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
      -Wnon-virtual-dtor -Wcast-align -Wunused -Woverloaded-virtual)
    if(KILN_WERROR)
      target_compile_options(${target} PRIVATE -Werror)
    endif()
  endif()
endfunction()

# Sanitizers apply to every target of Kiln's tree (libraries, tests, examples, the C
# programs): a program that links a sanitized static library needs the sanitizer runtime
# in its own link.
if(KILN_SANITIZE)
  list(JOIN KILN_SANITIZE "," _kiln_san)
  add_compile_options(-fsanitize=${_kiln_san} -fno-omit-frame-pointer)
  add_link_options(-fsanitize=${_kiln_san})
endif()

# Kernels are built for the machine that builds them unless told otherwise
# (set KILN_ARCH_FLAGS to "" for a portable build, or e.g. -march=x86-64-v3).
if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64" AND NOT CMAKE_CROSSCOMPILING)
  set(_kiln_arch_default "-march=native")
else()
  set(_kiln_arch_default "")
endif()
set(KILN_ARCH_FLAGS "${_kiln_arch_default}" CACHE STRING "Architecture flags for Kiln's kernels")

# The layers above the core (data, train, the kiln command) use header-only packages,
# privately: nlohmann-json3-dev (specs), libfast-float-dev (number parsing), libstb-dev
# (image decoding, compiled into libkiln with its functions static) and libcli11-dev
# (the command's arguments).
find_package(nlohmann_json 3.10 REQUIRED)
find_package(CLI11 2.1 REQUIRED)
find_path(KILN_FAST_FLOAT_INCLUDE_DIR fast_float/fast_float.h)
find_path(KILN_STB_INCLUDE_DIR stb/stb_image.h)
if(NOT KILN_FAST_FLOAT_INCLUDE_DIR OR NOT KILN_STB_INCLUDE_DIR)
  message(FATAL_ERROR "Kiln needs fast_float and stb_image (Debian: libfast-float-dev libstb-dev)")
endif()

# The model registry keeps its index in SQLite (Debian: libsqlite3-dev), privately. Cross
# builds (the edge check builds only kiln_run for aarch64) may go without it: libkiln then
# has no registry and no continuous-training pipeline.
find_package(SQLite3)
if(SQLite3_FOUND)
  set(KILN_WITH_SQLITE ON)
  # libkiln links SQLite through this private name. An installed static Kiln names it in its
  # link interface, and KilnConfig.cmake defines it from the shared library alone
  # (KILN_SQLITE_SONAME in KILN_SQLITE_LIBDIR), so consumers need only libsqlite3-0.
  add_library(KilnPrivate::sqlite3 INTERFACE IMPORTED)
  target_link_libraries(KilnPrivate::sqlite3 INTERFACE SQLite::SQLite3)
  file(REAL_PATH "${SQLite3_LIBRARY}" _kiln_sqlite_real)
  get_filename_component(KILN_SQLITE_LIBDIR "${SQLite3_LIBRARY}" DIRECTORY)
  get_filename_component(KILN_SQLITE_SONAME "${_kiln_sqlite_real}" NAME)
  # libsqlite3.so.0.8.6 -> libsqlite3.so.0 (the name the loader looks for)
  if(KILN_SQLITE_SONAME MATCHES "^(lib[^.]+\\.so\\.[0-9]+)")
    set(KILN_SQLITE_SONAME "${CMAKE_MATCH_1}")
  endif()
elseif(CMAKE_CROSSCOMPILING)
  set(KILN_WITH_SQLITE OFF)
else()
  message(FATAL_ERROR "Kiln's model registry needs SQLite (Debian: libsqlite3-dev)")
endif()

# The live board (`kiln board`) and the browser tests' WebDriver client use cpp-httplib
# (Debian: libcpp-httplib-dev), privately and only there: never in libkiln or kiln_infer.
# Debian ships it as a compiled library; its pkg-config Cflags (-DCPPHTTPLIB_OPENSSL_SUPPORT,
# ZLIB, BROTLI) must reach every user of the header so the header matches the library,
# hence the imported target PkgConfig::KILN_HTTPLIB. Cross builds (the edge check, which
# builds only kiln_run) go without it: the kiln command then has no board and the browser
# tests are not built.
if((KILN_BUILD_APPS OR KILN_BUILD_TESTS) AND NOT CMAKE_CROSSCOMPILING)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(KILN_HTTPLIB IMPORTED_TARGET cpp-httplib>=0.11)
  if(NOT KILN_HTTPLIB_FOUND)
    message(FATAL_ERROR "The kiln command and the tests need cpp-httplib (Debian: libcpp-httplib-dev)")
  endif()
endif()
