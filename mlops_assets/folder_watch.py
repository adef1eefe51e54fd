"""Which files were renamed into a folder while a sensor evaluation watched it (Linux inotify).

A file renamed into place is complete (the atomic drop the README asks for). The kernel stamps
files with a coarse clock, so a rename right after the last write often leaves the change time
equal to the modification time and the rename invisible to `stat`; inotify reports it exactly.
Where inotify is missing (not Linux) the watch reports nothing and the sensor's other rules apply.
"""

from __future__ import annotations

import ctypes
import os
import select
import struct
import time
from pathlib import Path

IN_MOVED_TO = 0x00000080
_EVENT_HEADER = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then len bytes of name


class RenamesInto:
    """Context manager: `names` renamed into `folder` since it was entered; `wait` sleeps until the
    next rename or the timeout, whichever comes first."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.names: set[str] = set()
        self._fd = -1

    def __enter__(self) -> "RenamesInto":
        libc = ctypes.CDLL(None, use_errno=True)
        if hasattr(libc, "inotify_init1") and self.folder.is_dir():
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            if fd >= 0 and libc.inotify_add_watch(fd, os.fsencode(self.folder), IN_MOVED_TO) >= 0:
                self._fd = fd
            elif fd >= 0:
                os.close(fd)
        return self

    def __exit__(self, *exc) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def wait(self, seconds: float) -> None:
        """Sleep up to `seconds`, less when a file is renamed in (it is then in `names`)."""
        if self._fd < 0:
            time.sleep(seconds)
        elif select.select([self._fd], [], [], seconds)[0]:
            self._read_events()

    def _read_events(self) -> None:
        try:
            data = os.read(self._fd, 64 * 1024)
        except BlockingIOError:
            return
        offset = 0
        while offset + _EVENT_HEADER.size <= len(data):
            _, mask, _, length = _EVENT_HEADER.unpack_from(data, offset)
            name = data[offset + _EVENT_HEADER.size : offset + _EVENT_HEADER.size + length].rstrip(b"\0")
            offset += _EVENT_HEADER.size + length
            if mask & IN_MOVED_TO and name:
                self.names.add(os.fsdecode(name))
