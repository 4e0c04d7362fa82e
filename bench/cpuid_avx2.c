// Preloaded by bench/as_avx2.py: CPUID answers without AVX-512, VNNI and AMX, so ONNX Runtime, PyTorch
// and numpy choose the kernels they would on an AVX2-only CPU. A SIMULATION of the kernel choice only.
//
// Linux makes CPUID trap (arch_prctl ARCH_SET_CPUID, 0; the CPU or hypervisor must offer cpuid_fault)
// with a SIGSEGV whose si_code is SI_KERNEL. The handler asks the CPU itself, with trapping lifted for
// that one instruction, clears the bits, and steps over the two-byte instruction. Any other SIGSEGV
// goes to the handler the program installed (sigaction is wrapped so that one does not replace this).
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>
#include <dlfcn.h>
#include <cpuid.h>

#define ARCH_SET_CPUID 0x1012

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);

static struct sigaction prev;  /* the handler others installed for SIGSEGV, kept to chain to */
static sigaction_fn real_sigaction;  /* libc's, past the wrapper below */
static int active;

static void handler(int sig, siginfo_t *info, void *ctx) {
    ucontext_t *uc = ctx;
    greg_t *g = uc->uc_mcontext.gregs;
    const unsigned char *ip = (const unsigned char *)g[REG_RIP];  /* read only for a #GP (SI_KERNEL), never a page fault */
    if (active && info->si_code == SI_KERNEL && ip[0] == 0x0F && ip[1] == 0xA2) {
        unsigned leaf = (unsigned)g[REG_RAX], sub = (unsigned)g[REG_RCX];
        unsigned a, b, c, d;
        syscall(SYS_arch_prctl, ARCH_SET_CPUID, 1);
        __cpuid_count(leaf, sub, a, b, c, d);
        syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0);
        if (leaf == 7 && sub == 0) {
            b &= ~((1u << 16) | (1u << 17) | (1u << 21) | (1u << 26) | (1u << 27) | (1u << 28) | (1u << 30) | (1u << 31));
            c &= ~((1u << 1) | (1u << 6) | (1u << 11) | (1u << 12) | (1u << 14));
            d &= ~((1u << 2) | (1u << 3) | (1u << 8) | (1u << 22) | (1u << 23) | (1u << 24) | (1u << 25));
        } else if (leaf == 7 && sub == 1) {
            a &= ~((1u << 4) | (1u << 5) | (1u << 23));
        }
        g[REG_RAX] = a; g[REG_RBX] = b; g[REG_RCX] = c; g[REG_RDX] = d;
        g[REG_RIP] += 2;
        return;
    }
    if (prev.sa_flags & SA_SIGINFO && prev.sa_sigaction) { prev.sa_sigaction(sig, info, ctx); return; }
    if (prev.sa_handler != SIG_DFL && prev.sa_handler != SIG_IGN && prev.sa_handler) { prev.sa_handler(sig); return; }
    /* a real fault with no handler of the program's: re-executing it ends the process as it would have */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    real_sigaction(SIGSEGV, &dfl, NULL);
}

/* Others asking for SIGSEGV get their handler chained behind ours instead of replacing it. */
int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
    if (!real_sigaction) real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
    if (sig != SIGSEGV || !active) return real_sigaction(sig, act, old);
    if (old) *old = prev;
    if (act) prev = *act;
    return 0;
}

__attribute__((constructor)) static void start(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    real_sigaction = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
    if (real_sigaction(SIGSEGV, &sa, &prev) != 0) return;
    if (syscall(SYS_arch_prctl, ARCH_SET_CPUID, 0) == 0) active = 1;
}
