/* Reads a file of the test's `Stress` type while a Rust writer publishes flat out.
 *
 *   stress load FILE MILLIS   snapshots for MILLIS ms; checks that every snapshot is one
 *                             committed value (every word equal to its version, the other fields
 *                             derived from it) and that versions never go backwards; prints
 *                             `reads=N retried=N torn=N backwards=N contended=N distinct=N
 *                             first=N last=N` (retried: snapshots the writer lapped at least
 *                             once, so the reader's validation rejected a copy and retried)
 *   stress wait FILE          the wait protocol, step by step with the test (see codegen_c.rs):
 *                             prints `ready v=N`, waits for a newer version, prints `woke v=N`
 *                             (and checks its value), waits 200 ms for nothing (`timeout`),
 *                             prints `ready2`, then waits until the writer is gone (`gone`).
 *   stress dump FILE          one snapshot, every leaf as `path=value` (as `every dump` does)
 *   stress superseded FILE    prints `ready`, then waits (with liveness probes switched off) and
 *                             prints `status=N name=...`: the test replaces the file meanwhile.
 */
#include "stress.h"

#include <stdlib.h>

/* Whether `v` is exactly the value the writer committed as `version`. */
static bool consistent(const stress *v, uint64_t version) {
    if (v->stamp != version) return false;
    for (size_t i = 0; i < sizeof v->words / sizeof v->words[0]; i++)
        if (v->words[i] != version) return false;
    if (v->tag != (uint32_t)(version * 2654435761u)) return false;
    if (v->odd != ((version & 1) == 1)) return false;
    if (v->mode != (stress_phase)(version % 3)) return false;
    char want[32];
    int n = snprintf(want, sizeof want, "v%llu", (unsigned long long)version);
    return n > 0 && v->label.len == (uint32_t)n && memcmp(v->label.bytes, want, (size_t)n) == 0;
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int fail(const char *what, stress_reader *r, ms_status s) {
    printf("error %s: status=%d %s: %s\n", what, (int)s, ms_strerror(s), r->ms.error.message);
    fflush(stdout);
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: stress load FILE MILLIS | stress wait FILE\n");
        return 2;
    }
    stress_reader r;
    ms_status s = stress_open(&r, argv[2], NULL);
    if (s != MS_OK) return fail("open", &r, s);
    static stress v;
    uint64_t version = 0;
    if (strcmp(argv[1], "load") == 0 && argc == 4) {
        uint64_t until = now_ms() + (uint64_t)strtoull(argv[3], NULL, 10);
        uint64_t reads = 0, torn = 0, backwards = 0, contended = 0, distinct = 0, retried = 0;
        uint64_t first = UINT64_MAX, last = 0;
        while (now_ms() < until) {
            s = stress_load(&r, &v, &version);
            if (s == MS_E_CONTENDED) {
                contended++;
                continue;
            }
            if (s != MS_OK) return fail("load", &r, s);
            reads++;
            if (r.ms.last_attempts > 1) retried++;
            if (!consistent(&v, version)) torn++;
            if (first == UINT64_MAX) first = version;
            if (version < last) backwards++;
            if (version != last || reads == 1) distinct++;
            last = version;
        }
        printf("reads=%llu retried=%llu torn=%llu backwards=%llu contended=%llu distinct=%llu first=%llu last=%llu\n",
               (unsigned long long)reads, (unsigned long long)retried, (unsigned long long)torn, (unsigned long long)backwards,
               (unsigned long long)contended, (unsigned long long)distinct,
               (unsigned long long)first, (unsigned long long)last);
    } else if (strcmp(argv[1], "wait") == 0) {
        s = stress_load(&r, &v, &version);
        if (s != MS_OK) return fail("load", &r, s);
        printf("ready v=%llu alive=%d\n", (unsigned long long)version, (int)ms_writer_alive(&r.ms));
        fflush(stdout);
        uint64_t woke = 0;
        s = stress_wait(&r, version, INT64_C(20000000000), &woke);
        if (s != MS_OK) return fail("wait", &r, s);
        s = stress_load(&r, &v, &version);
        if (s != MS_OK) return fail("load after wait", &r, s);
        printf("woke v=%llu loaded=%llu consistent=%d\n", (unsigned long long)woke,
               (unsigned long long)version, (int)consistent(&v, version));
        fflush(stdout);
        s = stress_wait(&r, version, INT64_C(200000000), &woke);
        printf("%s status=%d\n", s == MS_E_TIMEOUT ? "timeout" : "no-timeout", (int)s);
        printf("ready2\n");
        fflush(stdout);
        s = stress_wait(&r, version, INT64_C(20000000000), &woke);
        printf("%s status=%d alive=%d message=%s\n", s == MS_E_WRITER_GONE ? "gone" : "not-gone",
               (int)s, (int)ms_writer_alive(&r.ms), r.ms.error.message);
    } else if (strcmp(argv[1], "dump") == 0) {
        s = stress_load(&r, &v, &version);
        if (s != MS_OK) return fail("load", &r, s);
        printf("version=%llu\nstamp=%llu\n", (unsigned long long)version,
               (unsigned long long)v.stamp);
        for (size_t i = 0; i < sizeof v.words / sizeof v.words[0]; i++)
            printf("words[%zu]=%llu\n", i, (unsigned long long)v.words[i]);
        printf("tag=%lu\nodd=%s\nmode=%s\nlabel=str:", (unsigned long)v.tag,
               v.odd ? "true" : "false", stress_phase_name(v.mode));
        for (uint32_t i = 0; i < v.label.len; i++) printf("%02x", (unsigned char)v.label.bytes[i]);
        printf("\n");
    } else if (strcmp(argv[1], "superseded") == 0) {
        r.ms.liveness_interval_ns = UINT64_C(60000000000);
        printf("ready\n");
        fflush(stdout);
        s = stress_wait(&r, stress_version(&r), INT64_C(20000000000), &version);
        printf("status=%d name=%s\n", (int)s, ms_strerror(s));
    } else {
        fprintf(stderr, "usage: stress load FILE MILLIS | stress wait FILE\n");
        return 2;
    }
    stress_close(&r);
    return 0;
}
