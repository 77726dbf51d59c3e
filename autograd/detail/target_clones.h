// AG_ALSO_FOR_AVX2: put before a function (not a template, not a lambda) whose loop is
// compute-bound and gains from wider vectors. The compiler then builds it twice, for plain x86-64
// and for AVX2, and the loader picks the better one for the machine it runs on. The loop must end
// up inside that function: written there, or in a template marked AG_INLINE_INTO_CLONES that it
// calls (left to itself, Clang calls one plain x86-64 copy of the template from both clones).
// Empty elsewhere (other compilers and architectures) and under ThreadSanitizer, whose runtime is
// not ready when the loader runs the clones' resolver. Used by autograd's ops and by nn's
// optimisers; not public API.
//
// The targets must not enable FMA ("fma", "arch=x86-64-v3" and up): the compiler would then fuse
// a * b + c in one copy and not in the other, and results would depend on the machine. AVX2 alone
// rounds every operation as plain x86-64 does, so both copies give the same bits.
#pragma once

#if defined(__SANITIZE_THREAD__)
#define AG_NO_CLONES
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define AG_NO_CLONES
#endif
#endif

#if defined(__x86_64__) && defined(__linux__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(AG_NO_CLONES)
#define AG_ALSO_FOR_AVX2 __attribute__((target_clones("avx2", "default")))
#else
#define AG_ALSO_FOR_AVX2
#endif

#if defined(__GNUC__) || defined(__clang__)
#define AG_INLINE_INTO_CLONES inline __attribute__((always_inline))
#else
#define AG_INLINE_INTO_CLONES inline
#endif
