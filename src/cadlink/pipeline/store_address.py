"""Where a running `cadlink serve`'s store process answers, for commands run beside it.

The web process writes its store process's socket address and key to a file in the data dir
(readable by its owner only) once the store process serves, and removes it when it stops; a
command such as `cadlink backup` reads it to ask the store process, which holds the DuckDB
file, for a copy instead of needing the server stopped. Whoever can read the data dir can
read the databases anyway; the key gives nothing more.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

FILE_NAME = "store-process.json"


@dataclass(frozen=True)
class StoreAddress:
    address: str
    authkey: bytes
    pid: int  # the web process that keeps the store process


def advertise(data_dir: Path, address: str, authkey: bytes) -> Path:
    """Write the address (atomically, owner-only) for this process; returns the file."""
    path = data_dir / FILE_NAME
    partial = path.with_name(path.name + f".{os.getpid()}.partial")
    doc = {"pid": os.getpid(), "address": address.encode().hex(), "authkey": authkey.hex()}
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh)
    partial.replace(path)
    return path


def withdraw(data_dir: Path, address: str) -> None:
    """Remove the file if it is still this address's (another server may have replaced it)."""
    found = read(data_dir)
    if found is not None and found.address == address:
        (data_dir / FILE_NAME).unlink(missing_ok=True)


def read(data_dir: Path) -> StoreAddress | None:
    """The advertised address, if its web process still runs."""
    try:
        doc = json.loads((data_dir / FILE_NAME).read_text())
        found = StoreAddress(
            bytes.fromhex(doc["address"]).decode(), bytes.fromhex(doc["authkey"]), int(doc["pid"])
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(found.pid, 0)
    except ProcessLookupError:
        return None  # left behind by a server that was killed
    except PermissionError:
        pass  # alive, another user's
    return found
