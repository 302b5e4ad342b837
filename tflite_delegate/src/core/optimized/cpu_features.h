// Run-time CPU feature detection for choosing the kernel family: cpuid + xgetbv on x86-64,
// getauxval(AT_HWCAP) on aarch64 Linux.
#ifndef TTQ_DELEGATE_CORE_OPTIMIZED_CPU_FEATURES_H_
#define TTQ_DELEGATE_CORE_OPTIMIZED_CPU_FEATURES_H_

namespace ttq {
namespace core {
namespace optimized {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512dq = false;
  bool avx512vnni = false;
  // aarch64 (HWCAP_ASIMD, HWCAP_ASIMDDP, HWCAP2_I8MM).
  bool neon = false;
  bool neon_dotprod = false;
  bool i8mm = false;
};

// Detected once; the OS must also enable the YMM/ZMM state (xgetbv), or the flags are false.
const CpuFeatures& GetCpuFeatures();

// Kernel families, in increasing order within one architecture. kReference means "no optimized
// kernel". kNeon: aarch64 Advanced SIMD (ARMv8.0); kNeonDotprod: plus SDOT (ARMv8.2 dotprod).
enum class Isa { kReference = 0, kAvx2 = 1, kAvx512 = 2, kNeon = 3, kNeonDotprod = 4 };

const char* IsaName(Isa isa);

// The best family this CPU and build support: kAvx512 needs AVX-512 F/BW/VL/DQ, kAvx2 needs
// AVX2 + FMA; kNeonDotprod needs HWCAP_ASIMDDP, kNeon HWCAP_ASIMD. The environment variable
// TTQ_ISA=reference|avx2|avx512|neon|neon_dotprod caps the choice (it never raises it above what
// the CPU supports).
Isa BestIsa();

// True when this build contains kernels for `isa` and the CPU can run them.
bool IsaSupported(Isa isa);

}  // namespace optimized
}  // namespace core
}  // namespace ttq

#endif  // TTQ_DELEGATE_CORE_OPTIMIZED_CPU_FEATURES_H_
