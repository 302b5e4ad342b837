#include "core/optimized/cpu_features.h"

#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(_M_X64)
#define TTQ_X86_64 1
#if defined(_MSC_VER)
#include <intrin.h>
#else
#include <cpuid.h>
#endif
#endif
#if defined(__aarch64__) && defined(__linux__)
#define TTQ_AARCH64_LINUX 1
#include <sys/auxv.h>
#endif

namespace ttq {
namespace core {
namespace optimized {
namespace {

#ifdef TTQ_X86_64
void Cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
#if defined(_MSC_VER)
  int out[4];
  __cpuidex(out, static_cast<int>(leaf), static_cast<int>(sub));
  for (int i = 0; i < 4; ++i) r[i] = static_cast<unsigned>(out[i]);
#else
  __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
#endif
}

unsigned long long Xgetbv0() {
#if defined(_MSC_VER)
  return _xgetbv(0);
#else
  unsigned lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<unsigned long long>(hi) << 32) | lo;
#endif
}

CpuFeatures Detect() {
  CpuFeatures f;
  unsigned r[4];
  Cpuid(0, 0, r);
  const unsigned max_leaf = r[0];
  if (max_leaf < 7) return f;
  Cpuid(1, 0, r);
  const bool osxsave = (r[2] >> 27) & 1;
  const bool avx = (r[2] >> 28) & 1;
  const bool fma = (r[2] >> 12) & 1;
  if (!osxsave || !avx) return f;
  const unsigned long long xcr0 = Xgetbv0();
  const bool ymm_state = (xcr0 & 0x6) == 0x6;
  const bool zmm_state = (xcr0 & 0xe6) == 0xe6;
  if (!ymm_state) return f;
  Cpuid(7, 0, r);
  const unsigned ebx = r[1], ecx = r[2];
  f.avx2 = (ebx >> 5) & 1;
  f.fma = fma;
  if (zmm_state) {
    f.avx512f = (ebx >> 16) & 1;
    f.avx512dq = (ebx >> 17) & 1;
    f.avx512bw = (ebx >> 30) & 1;
    f.avx512vl = (ebx >> 31) & 1;
    f.avx512vnni = (ecx >> 11) & 1;
  }
  return f;
}
#elif defined(TTQ_AARCH64_LINUX)
CpuFeatures Detect() {
  // Bits of the Linux arm64 ABI (asm/hwcap.h), spelled out for older headers.
  constexpr unsigned long kHwcapAsimd = 1ul << 1, kHwcapAsimddp = 1ul << 20;
  constexpr unsigned long kHwcap2I8mm = 1ul << 13;
  const unsigned long hwcap = getauxval(AT_HWCAP), hwcap2 = getauxval(AT_HWCAP2);
  CpuFeatures f;
  f.neon = (hwcap & kHwcapAsimd) != 0;
  f.neon_dotprod = f.neon && (hwcap & kHwcapAsimddp) != 0;
  f.i8mm = f.neon && (hwcap2 & kHwcap2I8mm) != 0;
  return f;
}
#else
CpuFeatures Detect() { return CpuFeatures(); }
#endif

Isa CpuBest() {
  const CpuFeatures& f = GetCpuFeatures();
#if defined(TTQ_X86_64) && !defined(TTQ_NO_X86_KERNELS)
  if (f.avx2 && f.fma && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq) return Isa::kAvx512;
  if (f.avx2 && f.fma) return Isa::kAvx2;
#elif defined(TTQ_AARCH64_LINUX) && defined(TTQ_HAVE_NEON_KERNELS)
  if (f.neon_dotprod) return Isa::kNeonDotprod;
  if (f.neon) return Isa::kNeon;
#else
  (void)f;
#endif
  return Isa::kReference;
}

}  // namespace

const CpuFeatures& GetCpuFeatures() {
  static const CpuFeatures features = Detect();
  return features;
}

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kReference:
      return "reference";
    case Isa::kAvx2:
      return "avx2";
    case Isa::kAvx512:
      return "avx512";
    case Isa::kNeon:
      return "neon";
    case Isa::kNeonDotprod:
      return "neon_dotprod";
  }
  return "?";
}

bool IsaSupported(Isa isa) {
  // Levels compare only within one architecture: kNeon* are above kAvx* in the enum.
  const Isa best = CpuBest();
  const bool arm_level = isa == Isa::kNeon || isa == Isa::kNeonDotprod;
  const bool arm_best = best == Isa::kNeon || best == Isa::kNeonDotprod;
  if (isa != Isa::kReference && arm_level != arm_best) return false;
  return static_cast<int>(isa) <= static_cast<int>(best);
}

Isa BestIsa() {
  static const Isa best = [] {
    Isa isa = CpuBest();
    const char* env = std::getenv("TTQ_ISA");
    if (env != nullptr) {
      Isa cap = isa;
      if (std::strcmp(env, "reference") == 0) cap = Isa::kReference;
      if (std::strcmp(env, "avx2") == 0) cap = Isa::kAvx2;
      if (std::strcmp(env, "neon") == 0) cap = Isa::kNeon;
      if (static_cast<int>(cap) < static_cast<int>(isa)) isa = cap;
    }
    return isa;
  }();
  return best;
}

}  // namespace optimized
}  // namespace core
}  // namespace ttq
