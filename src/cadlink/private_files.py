"""What cadlink writes is its own user's alone: the data dir holds the daily salts, password
hashes and visitors' events, and exports and backups hold the same (docs/privacy.md)."""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

# Group and others get nothing: the CLI sets it as the umask, so new files are 0600 and new
# directories 0700.
PRIVATE_UMASK = 0o077


def make_private(directory: Path) -> None:
    """Readable by its owner only (an installation made before was 0755): everything in it is
    then out of other users' reach, whatever the files' own modes."""
    try:
        mode = directory.stat().st_mode & 0o777
        if mode & PRIVATE_UMASK:
            directory.chmod(mode & ~PRIVATE_UMASK)
            log.warning("made the data dir %s private to its owner (it was %o)", directory, mode)
    except OSError as e:  # not ours to change: say so, and go on
        log.warning("could not make the data dir %s private: %s", directory, e.strerror)
