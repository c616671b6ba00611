# A oneDNN package configuration that stops the configure the way Debian's does when
# OpenCL's development files are missing (tests/configure/check_onednn_fallback.cmake).
message(FATAL_ERROR "Could NOT find OpenCL (missing: OpenCL_LIBRARY OpenCL_INCLUDE_DIR)")
