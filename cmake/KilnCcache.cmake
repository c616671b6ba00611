# kiln_use_ccache(root): ccache as the C and C++ compiler launcher (where it is installed
# and no launcher is set), with paths taken relative to `root`, so two checkouts (a CI
# clone and a work tree) share cached objects. A macro: it sets the caller's variables.
# Used by the main project and by the fuzz project (fuzz/).
macro(kiln_use_ccache root)
  find_program(KILN_CCACHE ccache)
  if(KILN_CCACHE AND NOT CMAKE_CXX_COMPILER_LAUNCHER)
    set(CMAKE_CXX_COMPILER_LAUNCHER ${CMAKE_COMMAND} -E env CCACHE_BASEDIR=${root}
        CCACHE_NOHASHDIR=1 ${KILN_CCACHE})
    set(CMAKE_C_COMPILER_LAUNCHER ${CMAKE_CXX_COMPILER_LAUNCHER})
  endif()
endmacro()
