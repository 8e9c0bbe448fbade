"""The two things Python's standard library cannot do for a reader, done through ctypes:

- **A read-only shared mapping with an address.** `mmap.mmap(..., prot=PROT_READ)` maps the file
  read-only, but its buffer is read-only too, so ctypes cannot take its address
  (`ctypes.c_char.from_buffer` requires a writable buffer) and a futex needs one. So the reader
  calls libc's `mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0)` itself: the pages stay read-only
  (a store would fault), and ctypes objects made with `from_address` read them in place.
- **The shared futex** (FORMAT.md 9.10): `syscall(SYS_futex, &notify, FUTEX_WAIT, n, &timeout)`
  without `FUTEX_PRIVATE_FLAG`, so that a wake by the writer's process reaches this one. Where
  the system call number is not known (not Linux, or an architecture not in `_SYS_FUTEX`),
  `futex_wait` is None and waiters poll (FORMAT.md 9.10, last point).
"""

import ctypes
import errno
import mmap
import os
import sys

_libc = ctypes.CDLL(None, use_errno=True)

_mmap = _libc.mmap
_mmap.restype = ctypes.c_void_p
_mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
_munmap = _libc.munmap
_munmap.restype = ctypes.c_int
_munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_MAP_FAILED = ctypes.c_void_p(-1).value


def map_readonly(fd, length):
    """The address of a `PROT_READ`, `MAP_SHARED` mapping of the first `length` bytes of `fd`,
    or OSError."""
    addr = _mmap(None, length, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    if addr is None or addr == _MAP_FAILED:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return addr


def unmap(addr, length):
    _munmap(addr, length)


# SYS_futex by architecture (the kernel's unistd tables). 32-bit architectures take the
# 32-bit `struct timespec` of the original futex call, which `_Timespec` (two C longs) is.
_SYS_FUTEX = {
    "x86_64": 202,
    "amd64": 202,
    "i386": 240,
    "i486": 240,
    "i586": 240,
    "i686": 240,
    "aarch64": 98,
    "arm64": 98,
    "riscv64": 98,
    "loongarch64": 98,
    "armv6l": 240,
    "armv7l": 240,
    "armv8l": 240,
    "ppc64": 221,
    "ppc64le": 221,
    "s390x": 238,
}
FUTEX_WAIT = 0


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


# Results of `futex_wait`.
WOKEN, CHANGED, TIMED_OUT, INTERRUPTED = "woken", "changed", "timed out", "interrupted"


def _make_futex_wait():
    if not sys.platform.startswith("linux"):
        return None
    nr = _SYS_FUTEX.get(os.uname().machine.lower())
    if nr is None:
        return None
    syscall = _libc.syscall
    syscall.restype = ctypes.c_long

    def futex_wait(addr, expected, seconds):
        """Sleeps while the u32 at `addr` holds `expected`, at most `seconds`. Returns WOKEN (a
        FUTEX_WAKE, or a spurious wake-up), CHANGED (the word no longer held `expected`),
        TIMED_OUT or INTERRUPTED; every one means: re-check. OSError for anything else."""
        seconds = max(seconds, 0.0)
        ts = _Timespec(int(seconds), int((seconds - int(seconds)) * 1e9))
        r = syscall(
            ctypes.c_long(nr),
            ctypes.c_void_p(addr),
            ctypes.c_int(FUTEX_WAIT),
            ctypes.c_uint(expected & 0xFFFFFFFF),
            ctypes.byref(ts),
            ctypes.c_void_p(None),
            ctypes.c_int(0),
        )
        if r == 0:
            return WOKEN
        e = ctypes.get_errno()
        if e == errno.EAGAIN:
            return CHANGED
        if e == errno.ETIMEDOUT:
            return TIMED_OUT
        if e == errno.EINTR:
            return INTERRUPTED
        raise OSError(e, f"futex: {os.strerror(e)}")

    return futex_wait


futex_wait = _make_futex_wait()
