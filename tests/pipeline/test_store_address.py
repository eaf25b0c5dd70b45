"""The running store process's address, advertised in the data dir for commands beside it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cadlink.pipeline import store_address


def test_an_address_is_read_back_while_its_process_lives(tmp_path: Path) -> None:
    path = store_address.advertise(tmp_path, "\0cadlink-store-1-ab", b"k" * 32)
    assert path.stat().st_mode & 0o777 == 0o600
    found = store_address.read(tmp_path)
    assert found is not None
    assert (found.address, found.authkey) == ("\0cadlink-store-1-ab", b"k" * 32)


def test_an_address_left_by_a_dead_server_is_ignored(tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    store_address.advertise(tmp_path, "\0x", b"k")
    doc = json.loads((tmp_path / store_address.FILE_NAME).read_text())
    doc["pid"] = int(gone.stdout)
    (tmp_path / store_address.FILE_NAME).write_text(json.dumps(doc))
    assert store_address.read(tmp_path) is None
    (tmp_path / store_address.FILE_NAME).write_text("not json")
    assert store_address.read(tmp_path) is None


def test_a_server_withdraws_only_its_own_address(tmp_path: Path) -> None:
    store_address.advertise(tmp_path, "\0newer", b"k")
    store_address.withdraw(tmp_path, "\0older")  # a server that stopped after another started
    assert store_address.read(tmp_path) is not None
    store_address.withdraw(tmp_path, "\0newer")
    assert not (tmp_path / store_address.FILE_NAME).exists()
