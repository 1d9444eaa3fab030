/* portable.c: what keeps ./nta starting on glibc 2.34 (RHEL 9 and its
 * rebuilds, common on GPU clusters) although it is linked on a newer one.
 *
 * The CUDA build links libstdc++ and libgcc's unwinder statically (Makefile,
 * NTA_STATIC). A gcc built on glibc >= 2.35 makes that unwinder find a
 * program counter's unwind tables with _dl_find_object, new in glibc 2.35,
 * and the binary would then refuse to start on 2.34. This file defines
 * _dl_find_object with dl_iterate_phdr (glibc 2.2.4), so the static linker
 * binds the unwinder to it instead of glibc's. It is hidden: nothing outside
 * ./nta sees it. Only built where glibc's headers declare the function
 * (DLFO_STRUCT_HAS_EH_DBASE defined), that is where the unwinder may call
 * it, and for targets without a data-relative base (x86-64, aarch64; the
 * macro is 0), where the unwinder reads dlfo_eh_frame alone. The map's
 * bounds are filled as glibc does, the link map is left NULL. Exceptions are rare (the CUDA runtime's
 * C++ internals), so a walk over the loaded objects per lookup costs
 * nothing that matters. test/test_binary.c throws through it. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdint.h>
#include <string.h>

#if defined(DLFO_STRUCT_HAS_EH_DBASE) && !DLFO_STRUCT_HAS_EH_DBASE

struct find {
    uintptr_t pc;                  /* the address asked about */
    struct dl_find_object *out;
    int found;
};

/* One loaded object: does one of its PT_LOAD segments hold pc? */
static int find_visit(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct find *f = arg;
    uintptr_t lo = UINTPTR_MAX, hi = 0, eh = 0;
    int hit = 0;
    (void)size;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t start = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type == PT_GNU_EH_FRAME) eh = start;
        if (ph->p_type != PT_LOAD) continue;
        if (start < lo) lo = start;
        if (start + ph->p_memsz > hi) hi = start + ph->p_memsz;
        if (f->pc >= start && f->pc < start + ph->p_memsz) hit = 1;
    }
    if (!hit) return 0;
    memset(f->out, 0, sizeof *f->out);
    f->out->dlfo_map_start = (void *)lo;
    f->out->dlfo_map_end = (void *)hi;
    f->out->dlfo_eh_frame = (void *)eh;
    f->found = 1;
    return 1;                      /* stop the walk */
}

/* glibc's contract: 0 and *result filled when pc lies in a loaded object, -1 otherwise. */
__attribute__((visibility("hidden"))) int _dl_find_object(void *pc, struct dl_find_object *result)
{
    struct find f = {(uintptr_t)pc, result, 0};
    dl_iterate_phdr(find_visit, &f);
    return f.found ? 0 : -1;
}

#endif
