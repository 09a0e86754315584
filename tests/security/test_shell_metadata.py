"""A shell diagnostic cannot change a file's metadata outside its folder through a
descriptor opened for reading: inode flags (``chattr``), extended file attributes, the
``file_setattr`` call of Linux 6.17, or any call newer than the seccomp filter.

Each attack first runs outside the sandbox on a control file, to prove that it does change
the flags on this machine (so the check below could fail), then inside the sandbox on a
canary the sandbox may read; the canary's flags are then read by the test itself.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from security.test_shell_attacks import (  # the shell attack suite's harness
    PYTHON,
    Harness,
    assert_error,
    attack,
    canary,
    h,  # noqa: F401 - a fixture
    rows,
    system_dir,  # noqa: F401 - a fixture
)

from playbook.adapters.shell.seccomp import FIRST_UNREVIEWED

FS_IOC_GETFLAGS = 0x80086601
FS_NODUMP_FL, FS_NOATIME_FL = 0x40, 0x80
"""Flags every file system with chattr support takes from the file's owner alone."""

SETFLAGS = """
import array, fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
b = array.array('l', [0]); fcntl.ioctl(fd, 0x80086601, b)
b[0] |= 0x40 | 0x80
fcntl.ioctl(fd, 0x40086602, b)  # FS_IOC_SETFLAGS
print('changed')
"""
FSSETXATTR = """
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
raw = bytearray(28); fcntl.ioctl(fd, 0x801C581F, raw)  # FS_IOC_FSGETXATTR
xflags = struct.unpack_from('I', raw)[0] | 0x80 | 0x40  # FS_XFLAG_NODUMP | NOATIME
struct.pack_into('I', raw, 0, xflags)
fcntl.ioctl(fd, 0x401C5820, bytes(raw))  # FS_IOC_FSSETXATTR
print('changed')
"""
FILE_SETATTR = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
attr = (ctypes.c_uint32 * 6)()  # struct file_attr: u64 xflags, then four u32
path = sys.argv[1].encode()
if libc.syscall(468, -100, path, attr, 24, 0) != 0:  # file_getattr
    print('getattr', os.strerror(ctypes.get_errno()))
attr[0] |= 0x80 | 0x40
if libc.syscall(469, -100, path, attr, 24, 0) != 0:  # file_setattr
    sys.exit('file_setattr: ' + os.strerror(ctypes.get_errno()))
print('changed')
"""
ATTACKS = {
    "chattr": lambda path: ["chattr", "+dA", str(path)],
    "ioctl FS_IOC_SETFLAGS": lambda path: [PYTHON, "-c", SETFLAGS, str(path)],
    "ioctl FS_IOC_FSSETXATTR": lambda path: [PYTHON, "-c", FSSETXATTR, str(path)],
    "file_setattr (469)": lambda path: [PYTHON, "-c", FILE_SETATTR, str(path)],
}


def flags(path: Path) -> int:
    """The inode flags, read by the test (lsattr's own ioctl)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        buf = array.array("l", [0])
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, buf)
        return int(buf[0])
    finally:
        os.close(fd)


@pytest.fixture
def control(tmp_path: Path) -> Iterator[Path]:
    path = canary(tmp_path / "control")
    yield path
    with contextlib.suppress(OSError):
        subprocess.run(["chattr", "-dA", str(path)], check=False, capture_output=True)


@pytest.mark.parametrize("how", sorted(ATTACKS))
def test_a_diagnostic_cannot_set_inode_flags_outside_its_folder(
    h: Harness,  # noqa: F811 - the fixture imported above
    system_dir: Path,  # noqa: F811
    control: Path,
    how: str,
) -> None:
    argv = ATTACKS[how]
    done = subprocess.run(argv(control), capture_output=True, text=True, check=False)
    assert flags(control) & (FS_NODUMP_FL | FS_NOATIME_FL), (
        f"the attack must work outside the sandbox for this test to mean anything: "
        f"{done.stdout}{done.stderr}"
    )
    target = canary(system_dir)
    try:
        before = flags(target)
        payload = attack(h, argv(target))
        assert flags(target) == before  # where it lands: the canary's inode flags
        assert_error(payload)  # the program saw the refusal, and the run says so
        assert "changed" not in rows(payload)
    finally:
        subprocess.run(["chattr", "-dA", str(target)], check=False, capture_output=True)


def test_reading_the_flags_still_works_in_the_sandbox(
    h: Harness,  # noqa: F811
    system_dir: Path,  # noqa: F811
) -> None:
    """The rule refuses setters only: lsattr's getter passes, so diagnostics may read."""
    target = canary(system_dir)
    payload = attack(h, ["lsattr", str(target)])
    if payload is not None:
        assert payload["verdict"] == "pass", payload
        assert rows(payload)[0].endswith(str(target))


def test_a_call_newer_than_the_filter_gets_enosys(h: Harness) -> None:  # noqa: F811
    script = (
        "import ctypes, sys\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "for nr in (int(sys.argv[1]), int(sys.argv[1]) + 1, 1000):\n"
        "    r = libc.syscall(nr, 0, 0, 0, 0, 0)\n"
        "    print(nr, r, ctypes.get_errno())\n"
    )
    payload = attack(h, [PYTHON, "-c", script, str(FIRST_UNREVIEWED)])
    if payload is not None:
        enosys = 38
        assert len(rows(payload)) == 3, payload
        for line in rows(payload):
            _nr, result, err = (int(x) for x in line.split())
            assert (result, err) == (-1, enosys), line
