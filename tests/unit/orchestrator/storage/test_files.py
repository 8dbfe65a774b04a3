"""Writing files (``storage/files.py``): whole or not at all, with the umask's permissions, and an
error that names the file and the reason."""

from __future__ import annotations

import errno
import os

import pytest
from stylegrid.orchestrator.storage.files import WriteError, check_writable, write_atomic


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_files_get_the_permissions_the_umask_gives(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        path = write_atomic(tmp_path / "a" / "x.bin", b"data")
    finally:
        os.umask(old)
    assert path.read_bytes() == b"data"
    assert path.stat().st_mode & 0o777 == mode
    assert not list(tmp_path.rglob("*.tmp"))


def test_write_errors_name_the_file_and_say_no_space_left(tmp_path):
    blocker = tmp_path / "images"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(WriteError) as err:
        write_atomic(blocker / "gatys" / "x.png", b"png")
    assert str(blocker / "gatys" / "x.png") in str(err.value)
    with pytest.raises(WriteError, match="out.png"):
        check_writable(blocker / "out.png")
    full = WriteError(tmp_path / "big.png", OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)))
    assert str(full) == f"cannot write {tmp_path / 'big.png'}: no space left on device"
