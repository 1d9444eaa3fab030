/* test/test_binary.c: ./nta is one portable file. It needs no shared library
 * but libc, libm, the loader (and glibc's old split-offs libdl, libpthread,
 * librt): the compiler's runtimes are linked statically (Makefile). Its newest
 * GLIBC_ symbol version, the oldest glibc it starts on, stays at or below
 * GLIBC_CEILING, and nta --version names the commit and that same version. */
#define _POSIX_C_SOURCE 200809L
#include "test.h"

#include <stdlib.h>
#include <string.h>

/* The newest glibc we allow ./nta to need. 2.34: __libc_start_main of any
 * binary linked on glibc >= 2.34. 2.35: _dl_find_object, which the static
 * libgcc unwinder (libgcc_eh, needed by the static libstdc++ of the CUDA
 * build) calls when gcc was built on glibc >= 2.35. Ubuntu 22.04 has 2.35,
 * Debian 12 2.36; RHEL 9 has 2.34 and is left out. */
#define GLIBC_CEILING "2.35"

static char dir[] = "/tmp/nta-binary-XXXXXX";
static char out[1 << 20];

/* "2.35" or "2.2.5" as one comparable number */
static long glibc_number(const char *v)
{
    int a = 0, b = 0, c = 0;
    sscanf(v, "%d.%d.%d", &a, &b, &c);
    return a * 1000000L + b * 1000L + c;
}

static void test_needed(void)
{
    static const char *allowed[] = {"libc.so", "libm.so", "ld-linux", "libdl.so", "libpthread.so", "librt.so"};
    int rc = test_capture("readelf -d ./nta", dir, out, sizeof out), needed = 0;
    if (rc == 127) { test_skipped++; printf("skipped: the libraries ./nta needs: no readelf\n"); return; }
    CHECK(rc == 0 && strstr(out, "(NEEDED)"), "readelf -d ./nta: exit %d\n%s", rc, out);
    for (const char *p = out, *lib; (p = strstr(p, "(NEEDED)")) && (lib = strchr(p, '[')); p++, needed++) {
        int ok = 0;
        for (size_t i = 0; i < sizeof allowed / sizeof *allowed; i++)
            ok |= !strncmp(lib + 1, allowed[i], strlen(allowed[i]));
        CHECK(ok, "./nta needs %.*s: only libc, libm, the loader, libdl, libpthread and librt are allowed",
              (int)strcspn(lib + 1, "]"), lib + 1);
    }
    printf("./nta needs %d shared libraries (readelf -d)\n", needed);
}

/* The newest GLIBC_x.y among ./nta's dynamic symbols into v; 0 if none or no objdump. */
static int newest_glibc(char *v, size_t len)
{
    if (test_capture("objdump -T ./nta", dir, out, sizeof out)) return 0;
    long best = 0;
    for (const char *p = out; (p = strstr(p, "GLIBC_")); p++) {
        size_t n = strspn(p + 6, "0123456789.");
        if (n && glibc_number(p + 6) > best) {
            best = glibc_number(p + 6);
            snprintf(v, len, "%.*s", (int)n, p + 6);
        }
    }
    return best > 0;
}

static void test_version(const char *glibc)
{
    char cmd[256], commit[128] = "", want[160];
    int rc = test_capture("./nta --version", dir, out, sizeof out);
    CHECK(rc == 0 && sscanf(out, "nta commit %127s", commit) == 1, "nta --version: exit %d\n%s", rc, out);
    /* in a git checkout the commit is one of its commits, else "unknown" */
    char *dirty = strstr(commit, "-dirty");
    if (dirty) *dirty = 0;
    if (test_run("test -e .git && git --version > /dev/null 2>&1") == 0) {
        snprintf(cmd, sizeof cmd, "git rev-parse -q --verify '%s^{commit}' > /dev/null", commit);
        CHECK(*commit && strcmp(commit, "unknown") && test_run(cmd) == 0,
              "nta --version names commit '%s', which is not this repository's: rebuild (make)", commit);
    } else
        CHECK(!strcmp(commit, "unknown"), "nta --version names commit '%s' outside a git checkout", commit);
    snprintf(want, sizeof want, "glibc: %s or newer", glibc);
    CHECK(!*glibc || strstr(out, want), "nta --version says '%s' (objdump -T):\n%s", want, out);
    CHECK(strstr(out, "CUDA backend: ") && strstr(out, "NVRTC: ") && strstr(out, "CPU backend: "),
          "nta --version names the build's features:\n%s", out);
}

void test_binary(void)
{
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return; }
    test_needed();
    char glibc[32] = "";
    if (newest_glibc(glibc, sizeof glibc))
        CHECK(glibc_number(glibc) <= glibc_number(GLIBC_CEILING),
              "./nta needs glibc %s, newer than the ceiling %s (GLIBC_CEILING, test/test_binary.c)", glibc,
              GLIBC_CEILING);
    else test_skipped++, printf("skipped: the glibc ./nta needs: no GLIBC_ symbols read (objdump -T)\n");
    test_version(glibc);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    test_run(cmd);
}
