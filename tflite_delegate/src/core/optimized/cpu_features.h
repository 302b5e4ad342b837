// Run-time CPU feature detection (cpuid + xgetbv) for choosing the kernel family.
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
};

// Detected once; the OS must also enable the YMM/ZMM state (xgetbv), or the flags are false.
const CpuFeatures& GetCpuFeatures();

// Kernel families, in increasing order. kReference means "no optimized kernel".
enum class Isa { kReference = 0, kAvx2 = 1, kAvx512 = 2 };

const char* IsaName(Isa isa);

// The best family this CPU and build support: kAvx512 needs AVX-512 F/BW/VL/DQ, kAvx2 needs
// AVX2 + FMA. The environment variable TTQ_ISA=reference|avx2|avx512 caps the choice (it never
// raises it above what the CPU supports).
Isa BestIsa();

// True when this build contains kernels for `isa` and the CPU can run them.
bool IsaSupported(Isa isa);

}  // namespace optimized
}  // namespace core
}  // namespace ttq

#endif  // TTQ_DELEGATE_CORE_OPTIMIZED_CPU_FEATURES_H_
