# A oneDNN package configuration that does not even parse
# (tests/configure/check_onednn_fallback.cmake).
if(DNNL_CPU_RUNTIME STREQUAL "OMP"
  set(DNNL_COMPILE_FLAGS "")
