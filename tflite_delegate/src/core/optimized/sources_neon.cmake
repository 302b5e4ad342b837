# Included by sources.cmake for aarch64 builds: the NEON kernel families.
#
# Everything is compiled for the ARMv8.0 baseline except the *_neon_dotprod.cc files, which hold
# only the SDOT inner loops (plain functions on raw pointers, no inline library code that the
# linker could share with baseline code) and get -march=armv8.2-a+dotprod. They run only after
# getauxval(AT_HWCAP) & HWCAP_ASIMDDP said so (cpu_features.cc), so the library loads and runs on
# an ARMv8.0 core such as the Cortex-A53.
set(_ttq_neon_sources
  ${_ttq_opt_dir}/neon_kernels.cc
  ${_ttq_opt_dir}/fully_connected_neon.cc
  ${_ttq_opt_dir}/conv_neon.cc
  ${_ttq_opt_dir}/depthwise_neon.cc)
set(_ttq_neon_dotprod_sources
  ${_ttq_opt_dir}/fully_connected_neon_dotprod.cc
  ${_ttq_opt_dir}/conv_neon_dotprod.cc)
set_source_files_properties(${_ttq_neon_dotprod_sources} PROPERTIES COMPILE_OPTIONS
  "-march=armv8.2-a+dotprod")
set_source_files_properties(${_ttq_opt_dir}/dispatch.cc ${_ttq_opt_dir}/cpu_features.cc
  PROPERTIES COMPILE_DEFINITIONS "TTQ_NO_X86_KERNELS=1;TTQ_HAVE_NEON_KERNELS=1")
list(APPEND TTQ_OPTIMIZED_SOURCES ${_ttq_neon_sources} ${_ttq_neon_dotprod_sources})
