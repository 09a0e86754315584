"""The kernel's sandbox for a shell diagnostic's program: Landlock, seccomp, capabilities.

A shell diagnostic runs a program that a playbook (not trusted) names, with parameters
(not trusted either). Whether that program may write a file, reach a port or signal a
process is decided here by the kernel, not by a list of programs or options we allow.
:func:`confine` is called in the child process after ``fork`` and before ``execve``; it
cannot be undone, and everything the program starts inherits it.

Kernel interfaces, called through ``ctypes`` (no binding is needed for so few
calls, and the PyPI ones we read either handle only the file system (``landlock``
1.0.0.dev5, which also decides failure from a stale ``errno``) or drop what the kernel
lacks without saying so unless told otherwise (``landlockpy`` 0.2.0)):

* ``prctl(PR_SET_NO_NEW_PRIVS)``: no set-user-ID program or file capability can raise
  the child's privileges again; Landlock and seccomp both require it.
* **Capabilities** are dropped (bounding set, ambient set, then ``capset`` to nothing), so
  a responder who runs playbook as root does not hand the program ``CAP_SYS_ADMIN``,
  ``CAP_NET_RAW``, ``CAP_DAC_OVERRIDE`` or ``CAP_SYS_BOOT``. This carries weight for
  Landlock too: with ``CAP_SYS_PTRACE`` a sandboxed program still read
  ``/proc/PID/environ`` of a process outside its sandbox (measured on Linux 6.18).
* **Landlock** (Linux ≥ 5.13, unprivileged). Three system calls, numbered 444, 445 and 446
  on every architecture:

  - ``landlock_create_ruleset(attr, size, flags)``. With ``flags`` =
    ``LANDLOCK_CREATE_RULESET_VERSION`` and no ``attr`` it returns the ABI version.
    Otherwise ``attr`` is ``struct landlock_ruleset_attr { u64 handled_access_fs;
    u64 handled_access_net; u64 scoped; }`` (24 bytes: the second word needs ABI 4, the
    third ABI 6) and it returns a ruleset file descriptor. Every *handled* right is
    denied unless a rule grants it back.
  - ``landlock_add_rule(fd, type, attr, 0)``. Type 1, ``LANDLOCK_RULE_PATH_BENEATH``,
    takes ``struct landlock_path_beneath_attr { u64 allowed_access; s32 parent_fd; }``
    (packed: 12 bytes), granting rights on a file, or on a directory and everything
    beneath it. Type 2, ``LANDLOCK_RULE_NET_PORT``, takes ``struct
    landlock_net_port_attr { u64 allowed_access; u64 port; }``.
  - ``landlock_restrict_self(fd, 0)``: the calling thread, and every process it starts,
    is confined from now on.

  File-system rights (bit: meaning): 0 execute; 1 open for writing; 2 open for reading;
  3 list a directory; 4 remove a directory; 5 remove a file; 6-12 create a character
  device, directory, regular file, socket, fifo, block device, symbolic link; 13 (ABI 2)
  link or rename into another directory; 14 (ABI 3) truncate; 15 (ABI 5) ioctl on a
  device. Network rights (ABI 4): 0 bind a TCP port; 1 connect to a TCP port. Scopes
  (ABI 6): 0 abstract UNIX sockets, 1 signals: the program can neither connect to an
  abstract socket nor signal a process outside its own sandbox.

* **seccomp** (:mod:`playbook.adapters.shell.seccomp`) closes what Landlock does not
  cover as of ABI 7: UDP, UNIX and raw sockets, TCP Fast Open, file metadata (``chmod``,
  ``chown``, timestamps, extended attributes), the kernel keyrings and ``io_uring``.

What none of this restricts (SECURITY.md says so too): reading, where we choose what is
readable (:func:`readable_rules`); where on the network a permitted port leads (Landlock
knows ports, not hosts); CPU and memory; System V IPC.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path

from playbook.adapters.shell import seccomp

LANDLOCK_ABI_NEEDED = 6
"""Network rules arrived in ABI 4 (Linux 6.7), signal and abstract-socket scoping in
ABI 6 (Linux 6.12): below 6 a promise could not be kept, so the sandbox is missing."""

ABI_CAP_VARIABLE = "PLAYBOOK_LANDLOCK_ABI_MAX"
"""Tests set this to pretend the kernel is older (``0``: no Landlock). It can only lower
the ABI we use, never raise it, so it cannot weaken the sandbox behind a responder's
back: the lower ABI means a refusal, or the responder's own opt-in."""

_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1 << 0
_RULE_PATH_BENEATH, _RULE_NET_PORT = 1, 2

# File-system rights, as numbered in <linux/landlock.h>.
FS_EXECUTE = 1 << 0
FS_WRITE_FILE = 1 << 1
FS_READ_FILE = 1 << 2
FS_READ_DIR = 1 << 3
FS_REMOVE_DIR = 1 << 4
FS_REMOVE_FILE = 1 << 5
FS_MAKE_CHAR = 1 << 6
FS_MAKE_DIR = 1 << 7
FS_MAKE_REG = 1 << 8
FS_MAKE_SOCK = 1 << 9
FS_MAKE_FIFO = 1 << 10
FS_MAKE_BLOCK = 1 << 11
FS_MAKE_SYM = 1 << 12
FS_REFER = 1 << 13
FS_TRUNCATE = 1 << 14
FS_IOCTL_DEV = 1 << 15
FS_ALL = (1 << 16) - 1
"""Every file-system right ABI 5 and later know: all of them are handled (denied)."""

FILE_RIGHTS = FS_EXECUTE | FS_WRITE_FILE | FS_READ_FILE | FS_TRUNCATE | FS_IOCTL_DEV
"""The rights a rule on a single file (not a directory) may carry."""
READ_RIGHTS = FS_EXECUTE | FS_READ_FILE | FS_READ_DIR
"""Readable roots: read, list and run installed programs."""
PRIVATE_RIGHTS = FS_ALL & ~(FS_EXECUTE | FS_MAKE_CHAR | FS_MAKE_BLOCK | FS_IOCTL_DEV)
"""The run's private folder: anything but running what was written there, or devices."""
DEVICE_RIGHTS = FS_READ_FILE | FS_WRITE_FILE | FS_TRUNCATE
"""The harmless pseudo-devices (``> /dev/null`` opens with O_TRUNC, hence truncate)."""

NET_BIND_TCP = 1 << 0
NET_CONNECT_TCP = 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0
SCOPE_SIGNAL = 1 << 1

SYSTEM_ROOTS = (
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc",
    "/opt",
    "/srv",
    "/var",
    "/proc",
    "/sys",
)
"""What a diagnostic may read: the installed system, its configuration, logs and the
kernel's views (/proc, /sys). Not readable: people's homes (/home, /root, where keys,
cloud credentials and the playbook's own config and incidents live), temporary folders
(/tmp, /var/tmp, /dev/shm: other runs' and other users' files), /run (sockets, runtime
secrets such as /run/secrets), /mnt, /media and /boot. A diagnostic's output becomes
evidence and exports, so reading a secret is itself a leak."""

UNREADABLE_UNDER_ROOTS = ("/var/tmp",)
"""Parts of a readable root that are not readable (temporary files of others)."""

DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
"""Device nodes a program may open. Not /dev as a whole: a disk's block device is
readable by its owner, and reading it bypasses every rule on files."""


# --------------------------------------------------------------------------- the policy


@dataclass(frozen=True)
class Rule:
    """Rights on one path (a directory and what is beneath it, or one file)."""

    path: str
    rights: int


@dataclass(frozen=True)
class Policy:
    """What the confined program may do; built by the parent, applied in the child."""

    rules: tuple[Rule, ...] = ()
    """File-system grants; anything not granted is denied."""
    ports: tuple[int, ...] = ()
    """TCP ports the program may connect to (any host: Landlock knows ports only)."""
    udp: bool = False
    """UDP sockets allowed (so declared host names resolve); only with a declared network."""
    landlock: bool = True
    """False only when the kernel lacks Landlock and the responder opted in to running
    without it; seccomp, capabilities and no_new_privs still apply."""
    seccomp: bool = True
    """False only on an architecture our filter does not know, with the same opt-in."""

    def to_json(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Policy:
        rules = tuple(Rule(**r) for r in data.get("rules", ()))  # type: ignore[union-attr, arg-type]
        rest = {k: v for k, v in data.items() if k != "rules"}
        rest["ports"] = tuple(rest.get("ports", ()))  # type: ignore[arg-type]
        return cls(rules=rules, **rest)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Support:
    """What this kernel and machine offer, and in words what is missing."""

    abi: int
    arch: str
    seccomp_arch: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def landlock(self) -> bool:
        return self.abi >= LANDLOCK_ABI_NEEDED

    @property
    def complete(self) -> bool:
        """Every promise of the sandbox can be kept here."""
        return self.landlock and self.seccomp_arch


def support() -> Support:
    """Ask the kernel which Landlock ABI it has, and whether our seccomp filter fits."""
    abi = landlock_abi()
    arch = platform.machine()
    reasons: list[str] = []
    if abi == 0:
        reasons.append(
            "this kernel has no Landlock (it needs Linux 5.13 or later with 'landlock' "
            "in its lsm= list; Linux 6.12 or later for every rule we use)"
        )
    elif abi < LANDLOCK_ABI_NEEDED:
        reasons.append(
            f"this kernel's Landlock is ABI {abi}; network rules need ABI 4 and signal "
            f"scoping ABI {LANDLOCK_ABI_NEEDED} (Linux 6.12)"
        )
    if arch not in seccomp.ARCHES:
        reasons.append(f"the system-call filter knows x86_64 and aarch64, not {arch}")
    return Support(abi, arch, arch in seccomp.ARCHES, reasons)


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 when it has none (or it is disabled)."""
    try:
        libc = _libc()
    except OSError:
        return 0
    version = libc.syscall(
        _long(_SYS_CREATE_RULESET), None, _long(0), _long(_CREATE_RULESET_VERSION)
    )
    if version < 0:
        return 0  # ENOSYS: not built in; EOPNOTSUPP: disabled at boot
    cap = os.environ.get(ABI_CAP_VARIABLE, "").strip()
    if cap.isdigit():
        version = min(version, int(cap))
    return int(version)


def readable_rules(
    roots: tuple[str, ...] | list[str], unreadable: list[str] | tuple[str, ...]
) -> list[Rule]:
    """Read rules for ``roots`` minus everything under ``unreadable``.

    Landlock grants a directory with everything beneath it and cannot take part of a
    grant back, so a root that holds an unreadable path is split: its entries are
    granted one by one, except the one leading to the unreadable path, which is split
    the same way. Symbolic links are not granted (Landlock checks what a link leads to,
    so a link to a home directory stays unreadable); new entries created in a split
    directory after the run starts are not readable either.
    """
    denied = {os.path.realpath(p) for p in unreadable if p}
    rules: dict[str, int] = {}

    def under(path: str, parent: str) -> bool:
        return path == parent or path.startswith(parent.rstrip("/") + "/")

    def grant(path: str) -> None:
        try:
            info = os.lstat(path)
        except OSError:
            return
        if stat.S_ISLNK(info.st_mode):
            return
        if any(under(path, d) for d in denied):
            return
        if stat.S_ISDIR(info.st_mode):
            if any(under(d, path) for d in denied):
                try:
                    entries = sorted(os.listdir(path))
                except OSError:
                    return
                for name in entries:
                    grant(os.path.join(path, name))
                return
            rules[path] = READ_RIGHTS
        elif stat.S_ISREG(info.st_mode):
            rules[path] = READ_RIGHTS & FILE_RIGHTS
        # sockets, fifos and devices under a split directory are not granted

    for root in roots:
        real = os.path.realpath(root)  # /bin is often a link to /usr/bin
        if real in rules or not os.path.lexists(root):
            continue
        grant(real)
    granted = sorted(rules)
    return [  # a rule beneath another one adds nothing
        Rule(path, rules[path])
        for path in granted
        if not any(p != path and under(path, p) for p in granted)
    ]


# --------------------------------------------------------------------------- applying it


def confine(policy: Policy) -> None:
    """Confine the calling (single-threaded, just forked) process for good.

    Order matters: no_new_privs first (both filters need it), capabilities while we
    still hold CAP_SETPCAP, Landlock, then seccomp last so our own set-up calls are not
    filtered.

    Raises:
        OSError: a system call failed; the caller must not exec the program then.
    """
    libc = _libc()
    _check(libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")
    _drop_capabilities(libc)
    if policy.landlock:
        _landlock(libc, policy)
    if policy.seccomp:
        seccomp.install(libc, udp=policy.udp)


_PR_SET_NO_NEW_PRIVS = 38
_PR_CAPBSET_DROP = 24
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _drop_capabilities(libc: ctypes.CDLL) -> None:
    # Ambient set first (always allowed), then the bounding set (needs CAP_SETPCAP, which
    # only a privileged caller has; an unprivileged one has nothing to drop there), then
    # the effective, permitted and inheritable sets, which anyone may empty.
    _check(libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "clear ambient caps")
    try:
        last = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        last = 63
    for cap in range(last + 1):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            err = ctypes.get_errno()
            if err not in (errno.EPERM, errno.EINVAL):
                raise OSError(err, f"prctl(PR_CAPBSET_DROP, {cap}): {os.strerror(err)}")
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(libc.capset(ctypes.byref(header), data), "capset")


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # the kernel's struct is packed: 12 bytes, no tail padding
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _NetPortAttr(ctypes.Structure):
    _fields_ = [("allowed_access", ctypes.c_uint64), ("port", ctypes.c_uint64)]


def _landlock(libc: ctypes.CDLL, policy: Policy) -> None:
    attr = _RulesetAttr(
        FS_ALL, NET_BIND_TCP | NET_CONNECT_TCP, SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
    )
    ruleset = _check(
        libc.syscall(
            _long(_SYS_CREATE_RULESET), ctypes.byref(attr), _long(ctypes.sizeof(attr)), _long(0)
        ),
        "landlock_create_ruleset",
    )
    try:
        for rule in policy.rules:
            try:
                fd = os.open(rule.path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue  # gone since the policy was built: nothing to grant
            try:
                rights = rule.rights
                if not stat.S_ISDIR(os.fstat(fd).st_mode):
                    rights &= FILE_RIGHTS
                beneath = _PathBeneathAttr(rights, fd)
                _check(
                    libc.syscall(
                        _long(_SYS_ADD_RULE),
                        _long(ruleset),
                        _long(_RULE_PATH_BENEATH),
                        ctypes.byref(beneath),
                        _long(0),
                    ),
                    f"landlock_add_rule({rule.path})",
                )
            finally:
                os.close(fd)
        for port in policy.ports:
            net = _NetPortAttr(NET_CONNECT_TCP, port)
            _check(
                libc.syscall(
                    _long(_SYS_ADD_RULE),
                    _long(ruleset),
                    _long(_RULE_NET_PORT),
                    ctypes.byref(net),
                    _long(0),
                ),
                f"landlock_add_rule(port {port})",
            )
        _check(
            libc.syscall(_long(_SYS_RESTRICT_SELF), _long(ruleset), _long(0)),
            "landlock_restrict_self",
        )
    finally:
        os.close(ruleset)


# --------------------------------------------------------------------------- plumbing


_LIBC: ctypes.CDLL | None = None


def _libc() -> ctypes.CDLL:
    global _LIBC
    if _LIBC is None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        libc.prctl.restype = ctypes.c_int
        libc.prctl.argtypes = [
            ctypes.c_int,
            ctypes.c_ulong,
            ctypes.c_ulong,
            ctypes.c_ulong,
            ctypes.c_ulong,
        ]
        _LIBC = libc
    return _LIBC


def _long(value: int) -> ctypes.c_long:
    # syscall(2) is variadic: each argument must be passed as a full long, not an int.
    return ctypes.c_long(value)


def _check(result: int, what: str) -> int:
    # Failure is decided by the return value; errno is read only then (it may be stale).
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return int(result)
