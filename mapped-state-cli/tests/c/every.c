/* Reads a file of the test's `Every` type through the generated every.h.
 *
 *   every dump FILE    prints every leaf as `path=value` (the test compares these lines with
 *                      `mapped-state inspect --json`), exit 0; on error see below
 *   every open FILE    opens and loads: prints `status=N name=... field=... offset=N path=...`
 *                      and `message=...` lines, exit 0 (the test checks the code it names)
 *   every hold FILE    opens, prints `ready`, reads a line from stdin, then loads and prints as
 *                      `open` does (for a file changed between the open and the load)
 *
 * Values: integers in decimal, u128/i128 as 0x + 32 hex digits (two's complement), floats as
 * their bits in hex (`NaN` for a NaN), bool true/false, char U+ and its code point in hex,
 * enums their variant name, strings their bytes in hex. */
#include "every.h"

#include <math.h>
#include <stdlib.h>

static void u128(const char *path, uint64_t hi, uint64_t lo) {
    printf("%s=0x%016llx%016llx\n", path, (unsigned long long)hi, (unsigned long long)lo);
}

static void f32(const char *path, float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    if (isnan(f)) printf("%s=NaN\n", path);
    else printf("%s=f32:%08x\n", path, bits);
}

static void f64(const char *path, double f) {
    uint64_t bits;
    memcpy(&bits, &f, 8);
    if (isnan(f)) printf("%s=NaN\n", path);
    else printf("%s=f64:%016llx\n", path, (unsigned long long)bits);
}

static void str(const char *path, uint32_t len, const char *bytes) {
    printf("%s=str:", path);
    for (uint32_t i = 0; i < len; i++) printf("%02x", (unsigned char)bytes[i]);
    printf("\n");
}

static void enum_name(const char *path, const char *name) {
    printf("%s=%s\n", path, name != NULL ? name : "(invalid)");
}

static void dump(const every *v) {
    char p[64];
    printf("rpm=%lu\n", (unsigned long)v->rpm);
    f32("temperature_c", v->temperature_c);
    printf("uptime_s=%llu\n", (unsigned long long)v->uptime_s);
    printf("delta=%lld\n", (long long)v->delta);
    printf("tiny=%d\n", v->tiny);
    printf("short=%u\n", v->short_);
    u128("big", v->big.hi, v->big.lo);
    u128("debt", (uint64_t)v->debt.hi, v->debt.lo);
    f64("ratio", v->ratio);
    f64("unknown", v->unknown);
    printf("hot=%s\n", v->hot ? "true" : "false");
    printf("grade=U+%04lx\n", (unsigned long)v->grade);
    enum_name("mode", every_mode_name(v->mode));
    enum_name("trend", every_trend_name(v->trend));
    enum_name("wide", every_wide_name(v->wide));
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "samples[%d]", i);
        f32(p, v->samples[i]);
    }
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) printf("grid[%d][%d]=%u\n", i, j, v->grid[i][j]);
    for (int i = 0; i < 2; i++) {
        printf("history[%d].at=%lu\n", i, (unsigned long)v->history[i].at);
        snprintf(p, sizeof p, "history[%d].level", i);
        f32(p, v->history[i].level);
    }
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "modes[%d]", i);
        enum_name(p, every_mode_name(v->modes[i]));
    }
    str("label", v->label.len, v->label.bytes);
    printf("nothing=str:%s\n", v->nothing.len == 0 ? "" : "(not empty)");
    printf("limits.min=%d\n", v->limits.min);
    f64("limits.max", v->limits.max);
    printf("limits.enabled=%s\n", v->limits.enabled ? "true" : "false");
    printf("int=%d\n", v->int_);
    printf("default=%u\n", v->default_);
    printf("tail=%u\n", v->tail);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: every dump|open FILE\n");
        return 2;
    }
    every_reader r;
    every v;
    uint64_t version = 0;
    ms_status s = every_open(&r, argv[2], NULL);
    if (s == MS_OK && strcmp(argv[1], "hold") == 0) {
        char line[16];
        printf("ready\n");
        fflush(stdout);
        if (fgets(line, sizeof line, stdin) == NULL) return 2;
    }
    if (s == MS_OK) s = every_load(&r, &v, &version);
    if (strcmp(argv[1], "dump") == 0 && s == MS_OK) {
        printf("version=%llu\n", (unsigned long long)version);
        dump(&v);
    } else {
        printf("status=%d name=%s field=%s offset=%llu errno=%d path=%s\n", (int)s,
               ms_strerror(s), r.ms.error.field ? r.ms.error.field : "-",
               (unsigned long long)r.ms.error.offset, r.ms.error.sys_errno,
               r.ms.error.path[0] ? r.ms.error.path : "-");
        printf("message=%s\n", r.ms.error.message);
    }
    every_close(&r);
    every_close(&r); /* closing twice is harmless */
    return strcmp(argv[1], "dump") == 0 && s != MS_OK ? 1 : 0;
}
