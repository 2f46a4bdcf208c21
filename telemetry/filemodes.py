"""Owner-only files: the data dir holds the job history (real user names), token hashes and the
pseudonym salt, so ctwin keeps its directories 0700 and its files 0600.

Two mechanisms, because neither is enough alone:
- `private_umask()`, set once by the `ctwin` process: DuckDB creates files itself (the database,
  its write-ahead log, which comes and goes with every checkpoint, its spill directory, COPY
  exports), and only the process umask reaches those. PostgreSQL does the same for its data dir.
- explicit modes where we create or open files, for a library caller that keeps its own umask
  and for files an older ctwin left readable: `make_private_dir` creates 0700, `tighten` removes
  the group and other bits of an existing path and says so in the log.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

__all__ = ["PRIVATE_MASK", "make_private_dir", "private_umask", "tighten"]

log = logging.getLogger(__name__)

PRIVATE_MASK = 0o077
"""The group and other permission bits."""


def private_umask() -> int:
    """Add PRIVATE_MASK to this process's umask (a stricter one stays as it is); returns the old
    umask. Call once, at process start, before threads: the umask is per process, not per thread."""
    old = os.umask(PRIVATE_MASK)
    os.umask(old | PRIVATE_MASK)
    return old


def make_private_dir(path: Path) -> Path:
    """Create `path` (and missing parents) with the leaf 0700; an existing directory is left as
    it is (see `tighten`). Parents get the default mode, as with `mkdir -p`."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def tighten(path: Path) -> bool:
    """Remove the group and other bits of an existing file or directory of this user; True when
    it had any. Never follows a symlink, never raises: a path of another user, or a shared
    directory (sticky or world-writable, like /tmp), is left alone with a warning."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    mode = stat.S_IMODE(st.st_mode)
    if stat.S_ISLNK(st.st_mode) or not mode & PRIVATE_MASK:
        return False
    shared = stat.S_ISDIR(st.st_mode) and mode & (stat.S_ISVTX | stat.S_IWOTH)
    if shared or st.st_uid != os.getuid():
        why = "a shared directory" if shared else "owned by another user"
        log.warning("%s is mode %04o, open to other users, and %s: left as it is", path, mode, why)
        return False
    try:
        os.chmod(path, mode & ~PRIVATE_MASK)
    except OSError as exc:
        log.warning("%s is mode %04o, open to other users; cannot tighten it: %s", path, mode, exc.strerror)
        return False
    log.warning("%s was mode %04o, open to other users; now %04o", path, mode, mode & ~PRIVATE_MASK)
    return True
