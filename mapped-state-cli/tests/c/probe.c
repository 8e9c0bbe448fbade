/* Opens and loads a file through any generated header (compiled with `-include HEADER
 * -DPREFIX=name`) and prints what happened: `status=N name=... path=... offset=N` and
 * `message=...`. Exit 0 whatever the status (the test checks it). */
#include <stdio.h>

#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: probe FILE\n");
        return 2;
    }
    CAT(PREFIX, _reader) r;
    static PREFIX v;
    uint64_t version = 0;
    ms_status s = CAT(PREFIX, _open)(&r, argv[1], NULL);
    if (s == MS_OK) s = CAT(PREFIX, _load)(&r, &v, &version);
    printf("status=%d name=%s field=%s offset=%llu errno=%d path=%s\n", (int)s, ms_strerror(s),
           r.ms.error.field ? r.ms.error.field : "-", (unsigned long long)r.ms.error.offset,
           r.ms.error.sys_errno, r.ms.error.path[0] ? r.ms.error.path : "-");
    printf("message=%s\n", r.ms.error.message);
    CAT(PREFIX, _close)(&r);
    return 0;
}
