"""The system-call filter of a shell diagnostic's sandbox: what Landlock does not cover.

Landlock (ABI 7) filters TCP only, so UDP, UNIX sockets and raw protocols would pass; it
does not restrict file metadata (``chmod``, ``chown``, timestamps, extended attributes)
or the kernel keyrings, which hold a responder's secrets. This filter refuses, with
EACCES or EPERM:

* ``socket()`` for every family but TCP over IPv4 or IPv6 (which Landlock governs by
  port), netlink (read-only without capabilities, e.g. ``ss``), and UDP only when the
  diagnostic declares a network, so that its host name resolves. No UNIX sockets: they
  lead to systemd, Docker or PostgreSQL's peer login, all of which can write;
* ``sendto``/``sendmsg``/``sendmmsg`` with ``MSG_FASTOPEN``: a TCP Fast Open connection
  is made by the send, and Landlock's connect rule did not stop it (measured on Linux
  6.18: the SYN and its data reached a port not granted);
* ``io_uring_setup``: io_uring operations (socket, connect, …) bypass seccomp;
* the calls that change metadata, and the keyring calls;
* ``ioctl`` commands that change a file or its file system through a descriptor opened
  only for reading, which Landlock does not mediate on regular files and directories
  (measured on Linux 6.18: ``FS_IOC_SETFLAGS`` set ``chattr +dAS`` on a file outside the
  folder). The rule is the kernel's own encoding of the command (``_IOC_DIR`` in
  <asm-generic/ioctl.h>): a command that only passes data *in* (``_IOW``) is a setter,
  and every one is refused, whatever the file system (``FS_IOC_SETFLAGS``,
  ``FS_IOC_FSSETXATTR``, ``FS_IOC_SETVERSION``, ``FS_IOC_ENABLE_VERITY``, which makes a
  file read-only for good, ``FICLONE``, btrfs's subvolume create, snapshot and set-flags,
  and the rest). Getters (``_IOR``), read-write queries (``_IOWR``) and the legacy
  commands without a direction (``FIONBIO``, ``TCGETS``, ``SIOC*``) pass, except
  :data:`DENIED_IOCTLS`: the few of those that change state given only ownership
  (deduplication, fscrypt policies and keys, ext4's extent migration, btrfs's received-
  subvolume mark, and freeze, thaw, trim and shut-down, which also need a capability the
  sandbox lacks);
* every call numbered :data:`FIRST_UNREVIEWED` or above: calls newer than this filter
  (``file_getattr``/``file_setattr`` in Linux 6.17, 468 and 469) get ``ENOSYS``, the
  answer of an older kernel, which programs fall back from; a new call is allowed only
  once it has been read and added here;
* any call of another ABI (x32 numbers, 32-bit calls): the process is killed.

It is a classic BPF program on ``struct seccomp_data { int nr; u32 arch; u64
instruction_pointer; u64 args[6]; }``, installed with ``prctl(PR_SET_SECCOMP,
SECCOMP_MODE_FILTER, &prog)`` once no_new_privs is set, for x86-64 and AArch64 (system
call numbers from <asm/unistd_64.h> and <asm-generic/unistd.h>; calls added since Linux
5.1 share one number on every architecture).
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
from dataclasses import dataclass

_PR_SET_SECCOMP = 22

# Instruction codes from <linux/filter.h>.
_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS: load a 32-bit word of seccomp_data
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K: jump when (A & k) != 0
_AND_K = 0x54  # BPF_ALU | BPF_AND | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_RET_KILL_PROCESS = 0x80000000
_SECCOMP_MODE_FILTER = 2
_OFF_NR, _OFF_ARCH = 0, 4


def _off_arg(n: int) -> int:
    return 16 + 8 * n  # the low 32 bits of args[n] on a little-endian machine


@dataclass(frozen=True)
class _Arch:
    audit: int
    socket: int
    ioctl: int
    send: tuple[int, int, int]
    """sendto, sendmmsg (flags in args[3]) and sendmsg (flags in args[2])."""
    denied: dict[str, int]
    x32: bool = False


_COMMON = {"io_uring_setup": 425, "fchmodat2": 452, "setxattrat": 463, "removexattrat": 466}
ARCHES = {
    "x86_64": _Arch(
        0xC000003E,
        41,
        16,
        (44, 307, 46),
        {
            **_COMMON,
            "add_key": 248,
            "request_key": 249,
            "keyctl": 250,
            "chmod": 90,
            "fchmod": 91,
            "fchmodat": 268,
            "chown": 92,
            "fchown": 93,
            "lchown": 94,
            "fchownat": 260,
            "utime": 132,
            "utimes": 235,
            "futimesat": 261,
            "utimensat": 280,
            "setxattr": 188,
            "lsetxattr": 189,
            "fsetxattr": 190,
            "removexattr": 197,
            "lremovexattr": 198,
            "fremovexattr": 199,
        },
        x32=True,
    ),
    "aarch64": _Arch(
        0xC00000B7,
        198,
        29,
        (206, 269, 211),
        {
            **_COMMON,
            "add_key": 217,
            "request_key": 218,
            "keyctl": 219,
            "fchmod": 52,
            "fchmodat": 53,
            "fchownat": 54,
            "fchown": 55,
            "utimensat": 88,
            "setxattr": 5,
            "lsetxattr": 6,
            "fsetxattr": 7,
            "removexattr": 14,
            "lremovexattr": 15,
            "fremovexattr": 16,
        },
    ),
}
"""The machines the filter knows, by ``platform.machine()``."""

FIRST_UNREVIEWED = 468
"""The lowest system call number this filter has not been reviewed against (Linux 6.17
added ``file_getattr`` 468 and ``file_setattr`` 469, the same on both machines: numbers
since 5.1 are shared). Every call from here up gets ``ENOSYS``."""

_IOC_DIR_MASK = 0xC0000000
_IOC_WRITE_ONLY = 0x40000000
"""``_IOC_DIR`` bits of an ``ioctl`` command (<asm-generic/ioctl.h>, the same on x86-64
and AArch64): ``_IOW``, data passed in and nothing out, is a setter."""

DENIED_IOCTLS = {
    "FIDEDUPERANGE": 0xC0189436,  # shares extents into a file its owner opened to read
    "FS_IOC_SET_ENCRYPTION_POLICY": 0x800C6613,  # declared _IOR, but it sets
    "FS_IOC_ADD_ENCRYPTION_KEY": 0xC0506617,
    "FS_IOC_REMOVE_ENCRYPTION_KEY": 0xC0406618,  # would lock the responder's folders
    "FS_IOC_REMOVE_ENCRYPTION_KEY_ALL_USERS": 0xC0406619,
    "EXT4_IOC_MIGRATE": 0x00006609,  # rewrites a file's block map as extents
    "BTRFS_IOC_SET_RECEIVED_SUBVOL": 0xC0C89425,
    "BTRFS_IOC_SET_RECEIVED_SUBVOL_32": 0xC0C09425,
    "FIFREEZE": 0xC0045877,
    "FITHAW": 0xC0045878,
    "FITRIM": 0xC0185879,
    "FS_IOC_SHUTDOWN": 0x8004587D,
}
"""``ioctl`` commands that change state and are not ``_IOW`` (those are all refused)."""

_AF_UNIX, _AF_INET, _AF_INET6, _AF_NETLINK = 1, 2, 10, 16
_SOCK_STREAM, _SOCK_DGRAM, _SOCK_TYPE_MASK = 1, 2, 0xF
_IPPROTO_TCP, _IPPROTO_UDP = 6, 17
_MSG_FASTOPEN = 0x20000000


def program(arch: str, *, udp: bool) -> list[tuple[int, int, int, int]]:
    """The filter as (code, jump-if-true, jump-if-false, constant) instructions.

    Written with labels and resolved here, because BPF jumps are forward offsets of at
    most 255 instructions.
    """
    spec = ARCHES[arch]
    deny = _RET_ERRNO | errno.EPERM
    refuse_socket = _RET_ERRNO | errno.EACCES
    code: list[tuple[int, object, object, int]] = [
        (_LD_W_ABS, 0, 0, _OFF_ARCH),
        (_JEQ_K, 0, "kill", spec.audit),
        (_LD_W_ABS, 0, 0, _OFF_NR),
    ]
    if spec.x32:  # x32 system calls (nr | 0x40000000) would bypass the numbers below
        code.append((_JGE_K, "deny", 0, 0x40000000))
    code.append((_JGE_K, "unknown", 0, FIRST_UNREVIEWED))
    code += [(_JEQ_K, "deny", 0, nr) for nr in sorted(spec.denied.values())]
    sendto, sendmmsg, sendmsg = spec.send
    code += [
        (_JEQ_K, "ioctl", 0, spec.ioctl),
        (_JEQ_K, "socket", 0, spec.socket),
        (_JEQ_K, "flags3", 0, sendto),
        (_JEQ_K, "flags3", 0, sendmmsg),
        (_JEQ_K, "flags2", 0, sendmsg),
        (_RET_K, 0, 0, _RET_ALLOW),
        # TCP Fast Open connects from sendto/sendmsg, and Landlock's connect rule does
        # not see it (measured on Linux 6.18: the SYN reached a port not granted).
        ("label", "flags3", 0, 0),
        (_LD_W_ABS, 0, 0, _off_arg(3)),
        (_JSET_K, "refuse", "allow", _MSG_FASTOPEN),
        ("label", "flags2", 0, 0),
        (_LD_W_ABS, 0, 0, _off_arg(2)),
        (_JSET_K, "refuse", "allow", _MSG_FASTOPEN),
        # An ioctl's command is an unsigned int: the low 32 bits of args[1].
        ("label", "ioctl", 0, 0),
        (_LD_W_ABS, 0, 0, _off_arg(1)),
        *[(_JEQ_K, "deny", 0, cmd) for cmd in sorted(DENIED_IOCTLS.values())],
        (_AND_K, 0, 0, _IOC_DIR_MASK),
        (_JEQ_K, "deny", "allow", _IOC_WRITE_ONLY),
        ("label", "socket", 0, 0),
        (_LD_W_ABS, 0, 0, _off_arg(0)),
        (_JEQ_K, "allow", 0, _AF_NETLINK),
        (_JEQ_K, "inet", 0, _AF_INET),
        (_JEQ_K, "inet", 0, _AF_INET6),
        (_RET_K, 0, 0, refuse_socket),
        ("label", "inet", 0, 0),
        (_LD_W_ABS, 0, 0, _off_arg(1)),
        (_AND_K, 0, 0, _SOCK_TYPE_MASK),
        (_JEQ_K, "stream", 0, _SOCK_STREAM),
    ]
    if udp:
        code.append((_JEQ_K, "dgram", 0, _SOCK_DGRAM))
    code += [
        (_RET_K, 0, 0, refuse_socket),
        ("label", "stream", 0, 0),
        (_LD_W_ABS, 0, 0, _off_arg(2)),
        (_JEQ_K, "allow", 0, 0),
        (_JEQ_K, "allow", 0, _IPPROTO_TCP),  # not MPTCP or SCTP: Landlock may not see them
        (_RET_K, 0, 0, refuse_socket),
    ]
    if udp:
        code += [
            ("label", "dgram", 0, 0),
            (_LD_W_ABS, 0, 0, _off_arg(2)),
            (_JEQ_K, "allow", 0, 0),
            (_JEQ_K, "allow", 0, _IPPROTO_UDP),
            (_RET_K, 0, 0, refuse_socket),
        ]
    code += [
        ("label", "allow", 0, 0),
        (_RET_K, 0, 0, _RET_ALLOW),
        ("label", "refuse", 0, 0),
        (_RET_K, 0, 0, refuse_socket),
        ("label", "deny", 0, 0),
        (_RET_K, 0, 0, deny),
        ("label", "unknown", 0, 0),
        (_RET_K, 0, 0, _RET_ERRNO | errno.ENOSYS),
        ("label", "kill", 0, 0),
        (_RET_K, 0, 0, _RET_KILL_PROCESS),
    ]
    labels: dict[object, int] = {}
    out: list[tuple[int, object, object, int]] = []
    for instruction in code:
        if instruction[0] == "label":
            labels[instruction[1]] = len(out)
        else:
            out.append(instruction)  # type: ignore[arg-type]

    def offset(target: object, at: int) -> int:
        if isinstance(target, int):
            return target
        distance = labels[target] - at - 1
        if not 0 <= distance <= 255:
            raise ValueError(f"seccomp jump to {target} out of range")
        return distance

    return [(op, offset(jt, i), offset(jf, i), k) for i, (op, jt, jf, k) in enumerate(out)]


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def install(libc: ctypes.CDLL, *, udp: bool) -> None:
    """Install the filter on the calling thread (and what it starts), for good.

    Raises:
        OSError: the kernel refused it.
    """
    instructions = program(platform.machine(), udp=udp)
    filters = (_SockFilter * len(instructions))(*[_SockFilter(*i) for i in instructions])
    prog = _SockFprog(len(instructions), filters)
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(prog), 0, 0) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"prctl(PR_SET_SECCOMP): {os.strerror(err)}")
