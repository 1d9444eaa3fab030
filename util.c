/* util.c: errors, allocation, time, the random generator, the learning-rate
 * schedule: small things every module uses. */
#define _POSIX_C_SOURCE 200809L
#include "nta.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* ----------------------------------------------------------------- errors */

static __attribute__((noreturn)) void die(int status, const char *fmt, va_list ap)
{
    fflush(stdout);
    fputs("nta: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    exit(status);
}

void nta_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    die(1, fmt, ap);
}

void nta_die_option(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    die(2, fmt, ap);
}

void *nta_malloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) nta_die("out of memory allocating %zu bytes", bytes);
    return p;
}

void *nta_calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) nta_die("out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

double nta_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

void nta_fmt_time(char *buf, size_t len, double s)
{
    if (s < 60) snprintf(buf, len, "%.0fs", s);
    else if (s < 3600) snprintf(buf, len, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(buf, len, "%dh%02dm", (int)s / 3600, (int)s % 3600 / 60);
}

/* Read a whole regular file, NUL-terminated; NULL and a message on failure. */
uint8_t *nta_read_file(const char *path, size_t maxbytes, size_t *len, char *err, size_t errlen)
{
    struct stat st;
    FILE *f = fopen(path, "rb");
    if (!f) { snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno)); return NULL; }
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file (a folder, device or pipe)", path);
        fclose(f);
        return NULL;
    }
    if ((uint64_t)st.st_size > maxbytes) {
        snprintf(err, errlen, "%s: %llu bytes, more than the %zu this reader takes", path,
                 (unsigned long long)st.st_size, maxbytes);
        fclose(f);
        return NULL;
    }
    uint8_t *buf = nta_malloc((size_t)st.st_size + 1);
    *len = fread(buf, 1, (size_t)st.st_size, f);
    int bad = ferror(f) || *len != (size_t)st.st_size;
    fclose(f);
    if (bad) {
        snprintf(err, errlen, "%s: read error", path);
        free(buf);
        return NULL;
    }
    buf[*len] = 0;
    return buf;
}

/* -------------------------------------------------------------------- rng */

void rng_seed(Rng *r, uint64_t seed) { r->state = seed * 0x9E3779B97F4A7C15ull + 1; }

/* splitmix64: each call hashes the next value of a counter */
uint64_t rng_u64(Rng *r)
{
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint32_t rng_below(Rng *r, uint32_t n) { return (uint32_t)(((rng_u64(r) >> 32) * n) >> 32); }

float rng_uniform(Rng *r) { return (rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

float rng_normal(Rng *r)
{
    /* Box-Muller; u1 in (0, 1] so the log is finite */
    double u1 = ((rng_u64(r) >> 11) + 1) * (1.0 / 9007199254740992.0);
    double u2 = (rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* --------------------------------------------------------------- schedule */

float lr_cosine(float base, long step, long warmup, long total)
{
    if (step < warmup) return base * (step + 1) / (float)warmup;
    double t = (double)(step - warmup) / (double)(total > warmup ? total - warmup : 1);
    if (t > 1) t = 1;
    return (float)(base * 0.5 * (1.0 + cos(3.141592653589793 * t)));
}
