/* test/test_binary.c: ./nta is one portable file. It needs no shared library
 * but libc, libm, the loader (and glibc's old split-offs libdl, libpthread,
 * librt): the compiler's runtimes are linked statically (Makefile). Its newest
 * GLIBC_ symbol version, the oldest glibc it starts on, stays at or below
 * GLIBC_CEILING, and nta --version names the commit and that same version. */
#define _POSIX_C_SOURCE 200809L
#include "test.h"

#include <stdlib.h>
#include <string.h>

/* The newest glibc we allow ./nta to need: 2.34, RHEL 9's, and what any
 * binary linked on glibc >= 2.34 needs (__libc_start_main). The static
 * libgcc unwinder of the CUDA build would add 2.35 (_dl_find_object);
 * portable.c keeps it out, and test_unwind() checks its replacement. */
#define GLIBC_CEILING "2.34"

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

/* A C++ exception thrown through frames of a program linked as ./nta is
 * (static libstdc++ and libgcc, with portable.c's _dl_find_object) is
 * caught, the replacement answers for the program's own code, and the
 * program imports no _dl_find_object from glibc. */
static void test_unwind(void)
{
    static const char src[] =
        "#include <dlfcn.h>\n#include <stdio.h>\n#include <stdexcept>\n"
        "__attribute__((noinline)) static int deep(int n) {\n"
        "    if (n == 0) throw std::runtime_error(\"42\");\n"
        "    return deep(n - 1) + 1;\n}\n"
        "int main(int argc, char **argv) {\n"
        "    (void)argv;\n"
        "#ifdef DLFO_STRUCT_HAS_EH_DBASE\n"
        "    struct dl_find_object o;\n"
        "    if (_dl_find_object((void *)&deep, &o) != 0 || !o.dlfo_eh_frame) return 3;\n"
        "    if ((char *)o.dlfo_map_start > (char *)&deep || (char *)o.dlfo_map_end <= (char *)&deep) return 4;\n"
        "    if (_dl_find_object((void *)16, &o) != -1) return 5;\n"
        "#endif\n"
        "    try { deep(argc + 5); } catch (const std::exception &e) { printf(\"caught %s\\n\", e.what()); return 0; }\n"
        "    return 2;\n}\n";
    char path[512], cmd[1536];
    snprintf(path, sizeof path, "%s/unwind.cpp", dir);
    FILE *f = fopen(path, "w");
    if (!f) { CHECK(0, "cannot write %s", path); return; }
    fputs(src, f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "g++ -O1 %s build/portable.o -o %s/unwind -static-libstdc++ -static-libgcc", path, dir);
    int rc = test_capture(cmd, dir, out, sizeof out);
    if (rc == 127) { test_skipped++; printf("skipped: an exception through portable.c: no g++\n"); return; }
    CHECK(rc == 0, "%s: exit %d\n%s", cmd, rc, out);
    snprintf(cmd, sizeof cmd, "%s/unwind", dir);
    rc = test_capture(cmd, dir, out, sizeof out);
    CHECK(rc == 0 && strstr(out, "caught 42"), "an exception thrown 7 frames deep (static libgcc unwinder, "
          "portable.c's _dl_find_object): exit %d (3-5: a wrong lookup, 2 or a signal: not caught)\n%s", rc, out);
    snprintf(cmd, sizeof cmd, "objdump -T %s/unwind", dir);
    rc = test_capture(cmd, dir, out, sizeof out);
    CHECK(rc == 0 && !strstr(out, "_dl_find_object"), "the test program imports _dl_find_object from glibc:\n%s",
          out);
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
    test_unwind();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    test_run(cmd);
}
