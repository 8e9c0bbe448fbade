/* ---- mapped-state C reader runtime: format version 2 -------------------------------------------
 * The same in every header `mapped-state codegen c` writes (guarded, so several generated headers
 * can be included in one translation unit). Written from docs/FORMAT.md; section numbers below
 * are that file's. Linux is the tested platform; elsewhere waits poll instead of using the futex.
 *
 * Every access to memory the writer may change is an 8-byte (seq, payload words, control words)
 * or 4-byte (notify, flags) C11 atomic load, relaxed, ordered by acquire fences (10); payload
 * words are copied into the caller's memory and validated there, after the read was accepted.
 * The reader never writes to the file and takes no lock: read permission is enough. */
#ifndef MAPPED_STATE_C_RUNTIME_V2_1
#define MAPPED_STATE_C_RUNTIME_V2_1

/* POSIX.1-2008 (pread, O_NOFOLLOW, clock_gettime...): under -std=c11 nothing beyond ISO C is
 * declared unless asked for, so ask, unless the includer chose feature macros itself. */
#if defined(__STRICT_ANSI__) && !defined(_POSIX_C_SOURCE) && !defined(_DEFAULT_SOURCE) && \
    !defined(_GNU_SOURCE) && !defined(_XOPEN_SOURCE) && !defined(_BSD_SOURCE)
#define _DEFAULT_SOURCE 1
#endif

#ifdef __STDC_NO_ATOMICS__
#error "the mapped-state reader needs C11 atomics (<stdatomic.h>)"
#endif

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#if defined(__linux__)
#include <sys/syscall.h>
long syscall(long number, ...); /* declared by <unistd.h> only with _DEFAULT_SOURCE */
#else
#include <signal.h>
#endif

#if !defined(_POSIX_C_SOURCE) || _POSIX_C_SOURCE < 200809L
#error "the mapped-state reader needs POSIX.1-2008: include this header before any system header, or compile with -D_DEFAULT_SOURCE (or -D_POSIX_C_SOURCE=200809L)"
#endif

_Static_assert(ATOMIC_LLONG_LOCK_FREE == 2 && sizeof(unsigned long long) == 8,
               "8-byte atomics must be lock-free: they are shared with other processes");
_Static_assert(ATOMIC_INT_LOCK_FREE == 2 && sizeof(unsigned int) == 4,
               "4-byte atomics must be lock-free: they are shared with other processes");
_Static_assert(sizeof(float) == 4 && sizeof(double) == 8, "f32 and f64 are IEEE 754 binary32/64");
_Static_assert(sizeof(bool) == 1, "a mapped-state bool is one byte");
_Static_assert(CHAR_BIT == 8, "bytes are 8 bits");

/* Status codes: every function that can fail returns one and fills `ms_error`. */
typedef enum ms_status {
    MS_OK = 0,
    MS_E_OPEN = 1,               /* open(2) failed (missing, permission denied): see sys_errno */
    MS_E_SYMLINK = 2,            /* the path's last component is a symbolic link (refused) */
    MS_E_NOT_REGULAR_FILE = 3,   /* a directory, FIFO, socket or device (refused) */
    MS_E_UNTRUSTED_OWNER = 4,    /* owned by neither this user, nor root, nor a trusted uid (3.2) */
    MS_E_WRITABLE_BY_OTHERS = 5, /* group or others may write it (3.2) */
    MS_E_IO = 6,                 /* fstat, pread or mmap failed: see sys_errno */
    MS_E_NOT_A_STATE_FILE = 7,   /* the first 8 bytes are not "MAPSTATE" */
    MS_E_WRONG_LENGTH = 8,       /* the file's length is not the header's file_len */
    MS_E_FOREIGN_ENDIAN = 9,     /* written on a machine of the other byte order */
    MS_E_UNSUPPORTED_VERSION = 10, /* a format version other than 2 */
    MS_E_CORRUPT_HEADER = 11,    /* a header field is invalid: `field` and `offset` name it */
    MS_E_CORRUPT_MANIFEST = 12,  /* the manifest does not match the header: `offset` */
    MS_E_SCHEMA_MISMATCH = 13,   /* the file holds another type than this header was made for */
    MS_E_INVALID_VALUE = 14,     /* the value read holds invalid bytes: `path` and `offset` */
    MS_E_TRUNCATED = 15,         /* the file was truncated under the mapping; reopen it */
    MS_E_CONTENDED = 16,         /* no consistent read within max_attempts (the writer laps it) */
    MS_E_TIMEOUT = 17,           /* a wait's timeout passed with no newer version */
    MS_E_WRITER_GONE = 18,       /* a wait found no live writer and no newer version */
    MS_E_SUPERSEDED = 19,        /* a newer file replaced this one at its path: reopen by path */
    MS_E_INVALID_ARGUMENT = 20   /* a NULL pointer, a reader that is not open, a wrong size */
} ms_status;

/* A short description of a status code, like strerror(3). Never NULL. */
static inline const char *ms_strerror(ms_status code) {
    switch (code) {
    case MS_OK: return "success";
    case MS_E_OPEN: return "cannot open the file";
    case MS_E_SYMLINK: return "refused: the path is a symbolic link";
    case MS_E_NOT_REGULAR_FILE: return "refused: not a regular file";
    case MS_E_UNTRUSTED_OWNER: return "refused: owned by an untrusted user";
    case MS_E_WRITABLE_BY_OTHERS: return "refused: group or other users may write the file";
    case MS_E_IO: return "I/O error";
    case MS_E_NOT_A_STATE_FILE: return "not a mapped-state file";
    case MS_E_WRONG_LENGTH: return "the file has the wrong length";
    case MS_E_FOREIGN_ENDIAN: return "written with the other byte order";
    case MS_E_UNSUPPORTED_VERSION: return "unsupported format version";
    case MS_E_CORRUPT_HEADER: return "corrupt header";
    case MS_E_CORRUPT_MANIFEST: return "corrupt schema manifest";
    case MS_E_SCHEMA_MISMATCH: return "schema mismatch: the file holds another type";
    case MS_E_INVALID_VALUE: return "invalid value";
    case MS_E_TRUNCATED: return "the file was truncated while open";
    case MS_E_CONTENDED: return "no consistent snapshot: the writer commits too fast";
    case MS_E_TIMEOUT: return "timed out";
    case MS_E_WRITER_GONE: return "the writer is gone";
    case MS_E_SUPERSEDED: return "superseded: a newer file replaced this one";
    case MS_E_INVALID_ARGUMENT: return "invalid argument";
    }
    return "unknown mapped-state status";
}

/* What went wrong, in detail. `message` is one line, like the Rust library's error without the
 * file name (print the path yourself). */
typedef struct ms_error {
    ms_status code;
    int sys_errno;      /* MS_E_OPEN, MS_E_IO: the errno */
    const char *field;  /* MS_E_CORRUPT_HEADER: the header field ("slot_count"), else NULL */
    uint64_t offset;    /* header byte, manifest byte or payload byte the error is about */
    char path[256];     /* MS_E_INVALID_VALUE: the field's path ("limits.max", "samples[3]") */
    char message[512];
} ms_error;

/* Options of an open (FORMAT.md 3.2). A zeroed struct (or NULL) is the default. */
typedef struct ms_open_options {
    bool allow_shared_writable;  /* open files that group or others may write */
    const uid_t *trust_owners;   /* other owners trusted besides this user and root */
    size_t trust_owner_count;
} ms_open_options;

/* An open state file. Read its fields, never write them, except `max_attempts` and
 * `liveness_interval_ns`, which the caller may change after a successful open. Every call
 * records its failure in `error`, so a reader is used by one thread at a time (open one per
 * thread: they share the page cache, and a reader costs one mapping). */
typedef struct ms_reader {
    unsigned char *map;              /* a read-only shared mapping of the whole file; NULL if closed */
    size_t map_len;
    _Atomic uint64_t *seq;           /* control block (5) */
    _Atomic uint32_t *notify;
    _Atomic uint32_t *flags;
    _Atomic uint64_t *writer_pid;
    _Atomic uint64_t *commit_time;
    _Atomic uint64_t *writer_start;
    _Atomic uint64_t *ring;          /* slot 0, word 0 */
    _Atomic uint64_t *canary;        /* the manifest's first word: zeroed by a truncation (12) */
    uint64_t canary_expected;
    uint64_t schema_hash, payload_size, payload_align, slot_stride, slot_count, file_len;
    uint64_t manifest_offset, manifest_len, nonce;
    uint32_t max_attempts;           /* snapshot attempts before MS_E_CONTENDED; default 10,000 */
    uint64_t liveness_interval_ns;   /* a blocked wait probes the writer this often; default 100 ms */
    uint32_t last_attempts;          /* attempts the last snapshot took (1: the writer never lapped it) */
    ms_error error;                  /* the last failure */
} ms_reader;

#define MS_FLAG_SUPERSEDED 1u
#define MS_FLAG_CLOSED 2u
#define MS_DEFAULT_MAX_ATTEMPTS 10000u
#define MS_DEFAULT_LIVENESS_INTERVAL_NS UINT64_C(100000000)
#define MS_WAIT_FOREVER INT64_MAX

/* A u128 / i128 field: two native-endian 64-bit halves, aligned to 16 as in the file (8). */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
typedef struct ms_u128 { _Alignas(16) uint64_t hi; uint64_t lo; } ms_u128;
typedef struct ms_i128 { _Alignas(16) int64_t hi; uint64_t lo; } ms_i128;
#else
typedef struct ms_u128 { _Alignas(16) uint64_t lo; uint64_t hi; } ms_u128;
typedef struct ms_i128 { _Alignas(16) uint64_t lo; int64_t hi; } ms_i128;
#endif
_Static_assert(sizeof(ms_u128) == 16 && _Alignof(ms_u128) == 16, "u128 is 16 bytes, align 16");
_Static_assert(sizeof(ms_i128) == 16 && _Alignof(ms_i128) == 16, "i128 is 16 bytes, align 16");

/* -- internals (names with a double underscore after ms are not part of the API) -- */

static inline uint64_t ms__fnv1a64(const unsigned char *p, size_t n) {
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= UINT64_C(0x00000100000001b3);
    }
    return h;
}

static inline uint32_t ms__get32(const unsigned char *b, size_t at) {
    uint32_t v;
    memcpy(&v, b + at, 4);
    return v;
}

static inline uint64_t ms__get64(const unsigned char *b, size_t at) {
    uint64_t v;
    memcpy(&v, b + at, 8);
    return v;
}

/* snprintf that may truncate (messages are cut to their buffers on purpose). */
#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static inline void ms__snprintf(char *buf, size_t size, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, size, fmt, ap);
    va_end(ap);
}

/* Sets e->message from a format and returns e->code (set by the caller). */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static inline ms_status ms__fail(ms_error *e, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return e->code;
}

static inline void ms__clear_error(ms_error *e) {
    memset(e, 0, sizeof *e);
}

static inline ms_status ms__corrupt_header(ms_error *e, const char *field, uint64_t offset,
                                           const char *found, const char *expected) {
    e->code = MS_E_CORRUPT_HEADER;
    e->field = field;
    e->offset = offset;
    return ms__fail(e, "corrupt header: field `%s` at byte %llu is %s, expected %s", field,
                    (unsigned long long)offset, found, expected);
}

static inline bool ms__pow2(uint64_t x) {
    return x != 0 && (x & (x - 1)) == 0;
}

/* FORMAT.md 3.1: the header checks in the documented order, stopping at the first failure.
 * `b` holds the first `got` bytes of the file (at most 128), `actual_len` is its fstat length. */
static inline ms_status ms__parse_header(ms_reader *r, const unsigned char *b, size_t got,
                                         uint64_t actual_len) {
    ms_error *e = &r->error;
    char f[64], x[160];
    if (got < 8 || memcmp(b, "MAPSTATE", 8) != 0) {
        char hex[40] = "";
        for (size_t i = 0; i < got && i < 8; i++)
            ms__snprintf(hex + strlen(hex), sizeof hex - strlen(hex), i ? ", %02x" : "%02x", b[i]);
        e->code = MS_E_NOT_A_STATE_FILE;
        return ms__fail(e, "not a mapped-state file (first bytes [%s], expected \"MAPSTATE\")", hex);
    }
    if (got < 128) {
        e->code = MS_E_WRONG_LENGTH;
        return ms__fail(e, "file is %llu bytes long, expected 385 (truncated?)",
                        (unsigned long long)actual_len);
    }
    uint32_t endian = ms__get32(b, 12);
    if (endian != 0x01020304u) {
        if (endian == 0x04030201u) {
            e->code = MS_E_FOREIGN_ENDIAN;
            return ms__fail(e, "written with the other byte order (endian tag 0x%08x)", endian);
        }
        ms__snprintf(f, sizeof f, "0x%08x", endian);
        return ms__corrupt_header(e, "endian_tag", 12, f, "0x01020304");
    }
    uint32_t version = ms__get32(b, 8);
    if (version != 2) {
        e->code = MS_E_UNSUPPORTED_VERSION;
        return ms__fail(e, "format version %u is not supported (this reader reads version 2)",
                        version);
    }
    if (ms__get32(b, 16) != 128) {
        ms__snprintf(f, sizeof f, "%u", ms__get32(b, 16));
        return ms__corrupt_header(e, "header_len", 16, f, "128");
    }
    if (ms__get32(b, 20) != 8) {
        ms__snprintf(f, sizeof f, "%u", ms__get32(b, 20));
        return ms__corrupt_header(e, "word_size", 20, f, "8");
    }
    uint64_t size = ms__get64(b, 32), align = ms__get64(b, 40), stride = ms__get64(b, 48);
    uint64_t file_len = ms__get64(b, 56), moff = ms__get64(b, 64), mlen = ms__get64(b, 72);
    uint64_t poff = ms__get64(b, 88), n = ms__get64(b, 96);
    if (size < 1 || size > (UINT64_C(1) << 30)) {
        ms__snprintf(f, sizeof f, "%llu", (unsigned long long)size);
        return ms__corrupt_header(e, "payload_size", 32, f, "1..=1073741824");
    }
    if (!ms__pow2(align) || align > 64) {
        ms__snprintf(f, sizeof f, "%llu", (unsigned long long)align);
        return ms__corrupt_header(e, "payload_align", 40, f, "a power of two up to 64");
    }
    if (size % align != 0) {
        ms__snprintf(f, sizeof f, "%llu", (unsigned long long)size);
        ms__snprintf(x, sizeof x, "a multiple of payload_align %llu", (unsigned long long)align);
        return ms__corrupt_header(e, "payload_size", 32, f, x);
    }
    uint64_t want_stride = (size + 63) / 64 * 64;
    if (stride != want_stride) {
        ms__snprintf(f, sizeof f, "%llu", (unsigned long long)stride);
        ms__snprintf(x, sizeof x, "%llu (payload_size rounded up to 64)",
                 (unsigned long long)want_stride);
        return ms__corrupt_header(e, "slot_stride", 48, f, x);
    }
    if (poff != 256) {
        ms__snprintf(f, sizeof f, "%llu", (unsigned long long)poff);
        return ms__corrupt_header(e, "payload_offset", 88, f, "256");
    }
    if (!ms__pow2(n) || n < 2 || n > 256) {
        ms__snprintf(f, sizeof f, "%llu", (unsigned long long)n);
        return ms__corrupt_header(e, "slot_count", 96, f, "a power of two from 2 to 256");
    }
    if (n * stride > (UINT64_C(1) << 32)) {
        ms__snprintf(f, sizeof f, "%llu", (unsigned long long)n);
        ms__snprintf(x, sizeof x, "at most %llu slots of %llu bytes (a ring of at most 4294967296 bytes)",
                 (unsigned long long)((UINT64_C(1) << 32) / stride), (unsigned long long)stride);
        return ms__corrupt_header(e, "slot_count", 96, f, x);
    }
    uint64_t want_moff = 256 + n * stride;
    if (moff != want_moff) {
        ms__snprintf(f, sizeof f, "%llu", (unsigned long long)moff);
        ms__snprintf(x, sizeof x, "%llu (right after the last slot)", (unsigned long long)want_moff);
        return ms__corrupt_header(e, "manifest_offset", 64, f, x);
    }
    if (mlen < 1 || mlen > (UINT64_C(1) << 20)) {
        ms__snprintf(f, sizeof f, "%llu", (unsigned long long)mlen);
        return ms__corrupt_header(e, "manifest_len", 72, f, "1..=1048576");
    }
    if (file_len != moff + mlen) {
        ms__snprintf(f, sizeof f, "%llu", (unsigned long long)file_len);
        ms__snprintf(x, sizeof x, "%llu (manifest_offset + manifest_len)",
                 (unsigned long long)(moff + mlen));
        return ms__corrupt_header(e, "file_len", 56, f, x);
    }
    for (size_t i = 104; i < 120; i++) {
        if (b[i] != 0) {
            ms__snprintf(f, sizeof f, "%u", b[i]);
            return ms__corrupt_header(e, "reserved", i, f, "0");
        }
    }
    uint64_t sum = ms__fnv1a64(b, 120), stored = ms__get64(b, 120);
    if (sum != stored) {
        ms__snprintf(f, sizeof f, "0x%016llx", (unsigned long long)stored);
        ms__snprintf(x, sizeof x, "0x%016llx (FNV-1a 64 of bytes 0..120)", (unsigned long long)sum);
        return ms__corrupt_header(e, "checksum", 120, f, x);
    }
    if (actual_len != file_len) {
        e->code = MS_E_WRONG_LENGTH;
        return ms__fail(e, "file is %llu bytes long, expected %llu%s",
                        (unsigned long long)actual_len, (unsigned long long)file_len,
                        actual_len < file_len ? " (truncated?)" : "");
    }
    r->schema_hash = ms__get64(b, 24);
    r->payload_size = size;
    r->payload_align = align;
    r->slot_stride = stride;
    r->slot_count = n;
    r->file_len = file_len;
    r->manifest_offset = moff;
    r->manifest_len = mlen;
    r->nonce = ms__get64(b, 80);
    return MS_OK;
}

/* Reads up to `len` bytes at `off`, retrying short reads and EINTR; returns the count or -1. */
static inline ssize_t ms__pread_full(int fd, unsigned char *buf, size_t len, uint64_t off) {
    size_t done = 0;
    while (done < len) {
        ssize_t got = pread(fd, buf + done, len - done, (off_t)(off + done));
        if (got == 0) break;
        if (got < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        done += (size_t)got;
    }
    return (ssize_t)done;
}

static inline ms_status ms__io(ms_error *e, const char *op, int err) {
    e->code = MS_E_IO;
    e->sys_errno = err;
    return ms__fail(e, "%s: %s", op, strerror(err));
}

/* The whole open sequence of FORMAT.md 3.2 for a file that must hold exactly the schema whose
 * manifest is `want_manifest` (the generated header's): steps 1-5, then the schema hash (8) and
 * the manifest's bytes against the generated ones, then payload size and alignment (7), then the
 * mapping (9). This reader does not decode manifests (6): it only accepts its own, byte for byte,
 * so a different manifest is MS_E_SCHEMA_MISMATCH whether or not it would decode. */
static inline ms_status ms_open_schema(ms_reader *r, const char *path,
                                       const ms_open_options *opts, uint64_t want_hash,
                                       const unsigned char *want_manifest, size_t want_len,
                                       uint64_t want_size, uint64_t want_align) {
    if (r == NULL) return MS_E_INVALID_ARGUMENT;
    memset(r, 0, sizeof *r);
    ms_error *e = &r->error;
    if (path == NULL || want_manifest == NULL || want_len < 8) {
        e->code = MS_E_INVALID_ARGUMENT;
        return ms__fail(e, "invalid argument: a NULL path or manifest");
    }
    ms_open_options none;
    memset(&none, 0, sizeof none);
    if (opts == NULL) opts = &none;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        e->sys_errno = err;
        if (err == ELOOP) {
            e->code = MS_E_SYMLINK;
            return ms__fail(e, "refused: it is a symbolic link; open the file it points to");
        }
        if (err == EISDIR || err == ENXIO) {
            e->code = MS_E_NOT_REGULAR_FILE;
            return ms__fail(e, "refused: it is not a regular file");
        }
        e->code = MS_E_OPEN;
        return ms__fail(e, "open: %s", strerror(err));
    }
    ms_status st = MS_OK;
    unsigned char head[128];
    unsigned char *manifest = NULL;
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        st = ms__io(e, "stat", errno);
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        e->code = st = MS_E_NOT_REGULAR_FILE;
        ms__fail(e, "refused: it is not a regular file");
        goto out;
    }
    bool trusted = sb.st_uid == geteuid() || sb.st_uid == 0;
    for (size_t i = 0; !trusted && opts->trust_owners != NULL && i < opts->trust_owner_count; i++)
        trusted = opts->trust_owners[i] == sb.st_uid;
    if (!trusted) {
        e->code = st = MS_E_UNTRUSTED_OWNER;
        ms__fail(e, "refused: it is owned by uid %lu, neither this user nor root, and its owner "
                    "could change or truncate it under this process", (unsigned long)sb.st_uid);
        goto out;
    }
    if ((sb.st_mode & 022) != 0 && !opts->allow_shared_writable) {
        e->code = st = MS_E_WRITABLE_BY_OTHERS;
        ms__fail(e, "refused: its mode %o lets group or other users write it",
                 (unsigned)(sb.st_mode & 07777));
        goto out;
    }
    ssize_t got = ms__pread_full(fd, head, sizeof head, 0);
    if (got < 0) {
        st = ms__io(e, "read header", errno);
        goto out;
    }
    st = ms__parse_header(r, head, (size_t)got, (uint64_t)sb.st_size);
    if (st != MS_OK) goto out;
    manifest = (unsigned char *)malloc((size_t)r->manifest_len);
    if (manifest == NULL) {
        st = ms__io(e, "read manifest", ENOMEM);
        goto out;
    }
    got = ms__pread_full(fd, manifest, (size_t)r->manifest_len, r->manifest_offset);
    if (got < 0) {
        st = ms__io(e, "read manifest", errno);
        goto out;
    }
    if ((uint64_t)got != r->manifest_len) {
        e->code = st = MS_E_WRONG_LENGTH;
        ms__fail(e, "file is %llu bytes long, expected %llu",
                 (unsigned long long)(r->manifest_offset + (uint64_t)got),
                 (unsigned long long)r->file_len);
        goto out;
    }
    uint64_t digest = ms__fnv1a64(manifest, (size_t)r->manifest_len);
    if (digest != r->schema_hash) {
        e->code = st = MS_E_CORRUPT_MANIFEST;
        e->offset = 0;
        ms__fail(e, "corrupt schema manifest at manifest byte 0: FNV-1a 64 of the manifest is "
                    "0x%016llx, the header's schema_hash is 0x%016llx",
                 (unsigned long long)digest, (unsigned long long)r->schema_hash);
        goto out;
    }
    if (r->schema_hash != want_hash || r->manifest_len != want_len ||
        memcmp(manifest, want_manifest, want_len) != 0) {
        e->code = st = MS_E_SCHEMA_MISMATCH;
        ms__fail(e, "schema mismatch: file holds schema hash 0x%016llx, this header reads "
                    "0x%016llx%s (`mapped-state diff` lists the differences)",
                 (unsigned long long)r->schema_hash, (unsigned long long)want_hash,
                 r->schema_hash == want_hash ? " with another manifest" : "");
        goto out;
    }
    if (r->payload_size != want_size || r->payload_align != want_align) {
        e->code = st = MS_E_CORRUPT_MANIFEST;
        e->offset = 5;
        ms__fail(e, "corrupt schema manifest at manifest byte 5: manifest type has size %llu "
                    "align %llu, header says payload_size %llu payload_align %llu",
                 (unsigned long long)want_size, (unsigned long long)want_align,
                 (unsigned long long)r->payload_size, (unsigned long long)r->payload_align);
        goto out;
    }
    memcpy(&r->canary_expected, manifest, 8);
    void *m = mmap(NULL, (size_t)r->file_len, PROT_READ, MAP_SHARED, fd, 0);
    if (m == MAP_FAILED) {
        st = ms__io(e, "mmap", errno);
        goto out;
    }
    r->map = (unsigned char *)m;
    r->map_len = (size_t)r->file_len;
    /* Every pointer below is inside the mapping and aligned to its size: the mapping is
     * page-aligned and the offsets are multiples of 8 (manifest_offset is 256 + N * 64k). */
    r->seq = (_Atomic uint64_t *)(void *)(r->map + 128);
    r->notify = (_Atomic uint32_t *)(void *)(r->map + 136);
    r->flags = (_Atomic uint32_t *)(void *)(r->map + 140);
    r->writer_pid = (_Atomic uint64_t *)(void *)(r->map + 144);
    r->commit_time = (_Atomic uint64_t *)(void *)(r->map + 152);
    r->writer_start = (_Atomic uint64_t *)(void *)(r->map + 160);
    r->ring = (_Atomic uint64_t *)(void *)(r->map + 256);
    r->canary = (_Atomic uint64_t *)(void *)(r->map + r->manifest_offset);
    r->max_attempts = MS_DEFAULT_MAX_ATTEMPTS;
    r->liveness_interval_ns = MS_DEFAULT_LIVENESS_INTERVAL_NS;
out:
    free(manifest);
    close(fd);
    if (st != MS_OK) {
        ms_error saved = *e;
        memset(r, 0, sizeof *r);
        r->error = saved;
    }
    return st;
}

/* Unmaps the file. Safe to call on a reader whose open failed, and twice. */
static inline void ms_close(ms_reader *r) {
    if (r != NULL && r->map != NULL) {
        munmap(r->map, r->map_len);
        r->map = NULL;
    }
}

/* The newest committed version (seq >> 1, 5), with an acquire fence. */
static inline uint64_t ms_version(const ms_reader *r) {
    uint64_t s = atomic_load_explicit(r->seq, memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire);
    return s >> 1;
}

/* Whether a newer file has replaced this one at its path (flags bit 0). */
static inline bool ms_superseded(const ms_reader *r) {
    (void)ms_version(r);
    return (atomic_load_explicit(r->flags, memory_order_relaxed) & MS_FLAG_SUPERSEDED) != 0;
}

/* The writer's wall-clock time of the newest commit, in ns since the Unix epoch (5). */
static inline uint64_t ms_commit_time_ns(const ms_reader *r) {
    (void)ms_version(r);
    return atomic_load_explicit(r->commit_time, memory_order_relaxed);
}

/* The pid of the writer that last opened the file; 0 if none was recorded. */
static inline uint32_t ms_writer_pid(const ms_reader *r) {
    uint64_t pid = atomic_load_explicit(r->writer_pid, memory_order_relaxed);
    return pid > UINT32_MAX ? 0 : (uint32_t)pid;
}

/* Field 22 of /proc/PID/stat (start time in clock ticks since boot); false if unreadable. */
static inline bool ms__process_start(uint32_t pid, uint64_t *start) {
    char name[40], buf[1024];
    ms__snprintf(name, sizeof name, "/proc/%lu/stat", (unsigned long)pid);
    int fd = open(name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    ssize_t n = ms__pread_full(fd, (unsigned char *)buf, sizeof buf - 1, 0);
    close(fd);
    if (n <= 0) return false;
    buf[n] = '\0';
    /* The command name (field 2) is in parentheses and may hold spaces and parentheses. */
    char *p = strrchr(buf, ')');
    if (p == NULL) return false;
    p++;
    for (int field = 3; field < 22; field++) {
        while (*p == ' ') p++;
        while (*p != ' ' && *p != '\0') p++;
    }
    while (*p == ' ') p++;
    if (*p < '0' || *p > '9') return false;
    uint64_t v = 0;
    for (; *p >= '0' && *p <= '9'; p++) v = v * 10 + (uint64_t)(*p - '0');
    *start = v;
    return true;
}

/* FORMAT.md 9.9: whether the recorded writer is alive. No lock, nothing written: the closed flag,
 * then the pid and its process start time (a recycled pid has another one). */
static inline bool ms_writer_alive(const ms_reader *r) {
    uint64_t pid = atomic_load_explicit(r->writer_pid, memory_order_relaxed);
    atomic_thread_fence(memory_order_acquire); /* pairs with the writer's release store of pid */
    uint64_t start = atomic_load_explicit(r->writer_start, memory_order_relaxed);
    if (atomic_load_explicit(r->flags, memory_order_relaxed) & MS_FLAG_CLOSED) return false;
    if (pid == 0 || pid > UINT32_MAX) return false;
    uint64_t now;
    if (ms__process_start((uint32_t)pid, &now)) return start == 0 || now == start;
    if (access("/proc/self/stat", F_OK) == 0) return false; /* /proc works: no such process */
#if defined(__linux__)
    long rc = syscall(SYS_kill, (long)pid, 0L);
#else
    int rc = kill((pid_t)pid, 0);
#endif
    return rc == 0 || errno == EPERM;
}

static inline void ms__backoff(uint32_t attempt) {
    if (attempt < 16) {
        uint32_t spins = UINT32_C(1) << (attempt < 6 ? attempt : 6);
        for (uint32_t i = 0; i < spins; i++) atomic_signal_fence(memory_order_seq_cst);
    } else {
        sched_yield();
    }
}

/* FORMAT.md 9.3: a consistent copy of the newest version into `out` (exactly payload_size
 * bytes), not validated; sets *version. Then the truncation check of section 12. */
static inline ms_status ms_snapshot(ms_reader *r, void *out, size_t out_len, uint64_t *version) {
    if (r == NULL) return MS_E_INVALID_ARGUMENT;
    ms_error *e = &r->error;
    ms__clear_error(e);
    if (r->map == NULL || out == NULL || out_len != r->payload_size) {
        e->code = MS_E_INVALID_ARGUMENT;
        return ms__fail(e, "invalid argument: a closed reader, a NULL buffer or a size other than "
                           "payload_size");
    }
    unsigned char *dst = (unsigned char *)out;
    size_t full = out_len / 8, tail = out_len % 8;
    uint64_t n = r->slot_count, stride = r->slot_stride / 8;
    for (uint32_t attempt = 0; attempt < r->max_attempts || attempt == 0; attempt++) {
        uint64_t s1 = atomic_load_explicit(r->seq, memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        uint64_t c = s1 >> 1;
        _Atomic uint64_t *slot = r->ring + (c & (n - 1)) * stride;
        for (size_t i = 0; i < full; i++) {
            uint64_t w = atomic_load_explicit(slot + i, memory_order_relaxed);
            memcpy(dst + 8 * i, &w, 8);
        }
        if (tail != 0) {
            uint64_t w = atomic_load_explicit(slot + full, memory_order_relaxed);
            memcpy(dst + 8 * full, &w, tail); /* the first `tail` bytes in memory order */
        }
        atomic_thread_fence(memory_order_acquire);
        uint64_t s2 = atomic_load_explicit(r->seq, memory_order_relaxed);
        /* accept iff s2 <= 2(c + N) - 2, saturating (c <= 2^63 - 1, so 2c cannot overflow) */
        uint64_t limit = 2 * c;
        limit = limit > UINT64_MAX - (2 * n - 2) ? UINT64_MAX : limit + 2 * n - 2;
        if (s2 <= limit) {
            r->last_attempts = attempt + 1;
            if (atomic_load_explicit(r->canary, memory_order_relaxed) != r->canary_expected) {
                memset(out, 0, out_len);
                e->code = MS_E_TRUNCATED;
                return ms__fail(e, "truncated while open (it was %llu bytes): the value read may "
                                   "be lost bytes, not a committed value; reopen the file",
                                (unsigned long long)r->file_len);
            }
            if (version != NULL) *version = c;
            return MS_OK;
        }
        ms__backoff(attempt);
    }
    memset(out, 0, out_len);
    r->last_attempts = r->max_attempts;
    e->code = MS_E_CONTENDED;
    return ms__fail(e, "gave up reading a consistent snapshot after %lu attempts: the writer "
                       "commits faster than the value can be copied",
                    (unsigned long)r->max_attempts);
}

static inline uint64_t ms__now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
}

/* Sleeps until *word may differ from `seen`, at most `ns` nanoseconds (any return: re-check). */
static inline void ms__sleep_on(_Atomic uint32_t *word, uint32_t seen, uint64_t ns) {
    struct timespec ts;
    ts.tv_sec = (time_t)(ns / UINT64_C(1000000000));
    ts.tv_nsec = (long)(ns % UINT64_C(1000000000));
#if defined(__linux__) && defined(SYS_futex)
    /* FUTEX_WAIT (0) without FUTEX_PRIVATE_FLAG: a shared futex, keyed by the file's page, so
     * the writer's wake in another process finds this waiter (9.10). */
    syscall(SYS_futex, (uint32_t *)(void *)word, 0 /* FUTEX_WAIT */, seen, &ts, NULL, 0);
#else
    (void)word;
    (void)seen;
    if (ns > UINT64_C(5000000)) ts.tv_sec = 0, ts.tv_nsec = 5000000L;
    nanosleep(&ts, NULL);
#endif
}

/* FORMAT.md 9.10: blocks until a version newer than `since` is committed and sets *version to
 * it (MS_OK), or until `timeout_ns` passes (MS_E_TIMEOUT; MS_WAIT_FOREVER never times out), or
 * the writer is gone with nothing newer (MS_E_WRITER_GONE), or the file is superseded
 * (MS_E_SUPERSEDED). Read the value with a load afterwards. Uses no CPU while it sleeps. */
static inline ms_status ms_wait(ms_reader *r, uint64_t since, int64_t timeout_ns,
                                uint64_t *version) {
    if (r == NULL) return MS_E_INVALID_ARGUMENT;
    ms_error *e = &r->error;
    ms__clear_error(e);
    if (r->map == NULL || timeout_ns < 0) {
        e->code = MS_E_INVALID_ARGUMENT;
        return ms__fail(e, "invalid argument: a closed reader or a negative timeout");
    }
    uint64_t start = ms__now_ns();
    uint64_t interval = r->liveness_interval_ns < UINT64_C(1000000) ? UINT64_C(1000000)
                                                                    : r->liveness_interval_ns;
    uint64_t deadline = (uint64_t)timeout_ns > UINT64_MAX - start ? UINT64_MAX
                                                                  : start + (uint64_t)timeout_ns;
    uint64_t next_probe = start + interval;
    for (;;) {
        uint32_t seen = atomic_load_explicit(r->notify, memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        uint64_t v = ms_version(r);
        if (v > since) {
            if (version != NULL) *version = v;
            return MS_OK;
        }
        if (atomic_load_explicit(r->flags, memory_order_relaxed) & MS_FLAG_SUPERSEDED) {
            e->code = MS_E_SUPERSEDED;
            return ms__fail(e, "superseded: a newer file has replaced this one at its path; "
                               "reopen it");
        }
        uint64_t now = ms__now_ns();
        if (now >= next_probe) {
            if (!ms_writer_alive(r)) {
                v = ms_version(r);
                if (v > since) {
                    if (version != NULL) *version = v;
                    return MS_OK;
                }
                e->code = MS_E_WRITER_GONE;
                return ms__fail(e, "the writer (pid %lu) is gone and version %llu is the last",
                                (unsigned long)ms_writer_pid(r), (unsigned long long)v);
            }
            next_probe = now + interval;
        }
        if (now >= deadline) {
            e->code = MS_E_TIMEOUT;
            return ms__fail(e, "timed out waiting for a version newer than %llu",
                            (unsigned long long)since);
        }
        uint64_t nap = next_probe - now;
        if (deadline - now < nap) nap = deadline - now;
        ms__sleep_on(r->notify, seen, nap);
    }
}

/* -- value validation (FORMAT.md 10), used by the generated `*_validate` functions -- */

static inline void ms__prepend(ms_error *e, const char *s) {
    size_t have = strlen(e->path), add = strlen(s);
    if (have + add + 1 > sizeof e->path) return; /* too deep to name: keep the inner part */
    memmove(e->path + add, e->path, have + 1);
    memcpy(e->path, s, add);
}

/* Prepends a field name: "limits" + "max" -> "limits.max", "grid" + "[1]" -> "grid[1]". */
static inline void ms__path_field(ms_error *e, const char *name) {
    if (e->path[0] != '\0' && e->path[0] != '[') ms__prepend(e, ".");
    ms__prepend(e, name);
}

static inline void ms__path_index(ms_error *e, size_t i) {
    char s[32];
    ms__snprintf(s, sizeof s, "[%llu]", (unsigned long long)i);
    if (e->path[0] != '\0' && e->path[0] != '[') ms__prepend(e, ".");
    ms__prepend(e, s);
}

/* Records an invalid value at payload byte `off` (the path is prepended on the way out). */
static inline int ms__invalid(ms_error *e, const unsigned char *p, size_t off, size_t len,
                              const char *expected) {
    char hex[3 * 16 + 8] = "";
    for (size_t i = 0; i < len && i < 16; i++)
        ms__snprintf(hex + strlen(hex), sizeof hex - strlen(hex), i ? " %02x" : "%02x", p[off + i]);
    if (len > 16) ms__snprintf(hex + strlen(hex), sizeof hex - strlen(hex), " ...");
    e->code = MS_E_INVALID_VALUE;
    e->offset = off;
    e->path[0] = '\0';
    ms__snprintf(e->message, sizeof e->message, "holds [%s], expected %s", hex, expected);
    return 1;
}

/* After a generated check failed: "invalid value: field `path` at payload byte N holds ...". */
static inline ms_status ms__finish_invalid(ms_error *e) {
    char what[sizeof e->message];
    memcpy(what, e->message, sizeof what);
    if (e->path[0] != '\0')
        ms__snprintf(e->message, sizeof e->message, "invalid value: field `%s` at payload byte %llu %s",
                 e->path, (unsigned long long)e->offset, what);
    else
        ms__snprintf(e->message, sizeof e->message, "invalid value at payload byte %llu %s",
                 (unsigned long long)e->offset, what);
    return MS_E_INVALID_VALUE;
}

static inline int ms__check_bool(const unsigned char *p, size_t off, ms_error *e) {
    return p[off] > 1 ? ms__invalid(e, p, off, 1, "bool (0 or 1)") : 0;
}

static inline int ms__check_char(const unsigned char *p, size_t off, ms_error *e) {
    uint32_t c = ms__get32(p, off);
    if (c > 0x10FFFFu || (c >= 0xD800u && c <= 0xDFFFu))
        return ms__invalid(e, p, off, 4, "char (a Unicode scalar value)");
    return 0;
}

/* A FixedStr<cap> at `off`: len <= cap, then bytes 4 .. 4 + len are UTF-8 (10). */
static inline int ms__check_str(const unsigned char *p, size_t off, uint32_t cap, ms_error *e) {
    uint32_t len = ms__get32(p, off);
    if (len > cap) {
        char x[64];
        ms__snprintf(x, sizeof x, "string length at most %lu", (unsigned long)cap);
        return ms__invalid(e, p, off, 4, x);
    }
    const unsigned char *s = p + off + 4;
    for (uint32_t i = 0; i < len;) {
        unsigned char b = s[i];
        uint32_t need, cp;
        if (b < 0x80) { i++; continue; }
        else if (b >= 0xC2 && b <= 0xDF) need = 1, cp = b & 0x1Fu;
        else if (b >= 0xE0 && b <= 0xEF) need = 2, cp = b & 0x0Fu;
        else if (b >= 0xF0 && b <= 0xF4) need = 3, cp = b & 0x07u;
        else return ms__invalid(e, p, off + 4 + i, 1, "UTF-8 text");
        if (len - i - 1 < need) return ms__invalid(e, p, off + 4 + i, len - i, "UTF-8 text");
        for (uint32_t k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return ms__invalid(e, p, off + 4 + i, k + 1, "UTF-8 text");
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        if ((need == 2 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (need == 3 && (cp < 0x10000 || cp > 0x10FFFF)))
            return ms__invalid(e, p, off + 4 + i, need + 1, "UTF-8 text");
        i += need + 1;
    }
    return 0;
}

#endif /* MAPPED_STATE_C_RUNTIME_V2_1 */
