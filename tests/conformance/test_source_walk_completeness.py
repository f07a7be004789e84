"""Every source backend's walk accounts for what it lists: folders it cannot enter are
errors naming the cause (never special files), names that are not UTF-8 do not stop it,
and what a server hides from the client is declared in ``features.hidden_kinds``."""

from __future__ import annotations

import os

from sharelift.storage import EntryKind

from .conftest import SourceEnv
from .test_source_conformance import write

# 1969-01-01 and 2100-01-01 (+5 s), in seconds since the epoch.
BEFORE_1970 = -31_536_000
AFTER_2100 = 4_102_444_805


def walk_as_served(env: SourceEnv) -> list[tuple[str, str, int, int, str | None]]:
    """(path, kind, size, mtime_ns, error) of every entry, read as the server's user."""
    address = env.address

    def attempt() -> list[tuple[str, str, int, int, str | None]]:
        from sharelift.storage import open_source

        with open_source(address) as source:
            return [(e.path, e.kind.value, e.size, e.mtime_ns, e.error) for e in source.walk()]

    return env.run_unprivileged(attempt)  # type: ignore[no-any-return]


def test_a_folder_that_lists_but_cannot_be_searched_is_an_error_naming_the_cause(
    source_env: SourceEnv,
) -> None:
    write(source_env.root, "shut/inner.txt", b"inside")
    write(source_env.root, "shut/sub/deeper.txt", b"deeper")
    write(source_env.root, "later.txt")
    (source_env.root / "shut").chmod(0o644)
    entries = walk_as_served(source_env)
    by_path = {p: (kind, err) for p, kind, _, _, err in entries}
    assert "later.txt" in by_path
    kind, error = by_path["shut"]
    assert kind == "dir"
    assert error is not None and "permission denied" in error
    for path, kind, _, _, err in entries:
        if path.startswith("shut/"):
            assert err is not None, f"{path} listed as a {kind} without an error"
            assert "permission denied" in err and "'shut'" in err
    assert [p for p, *_ in entries].count("shut") == 1


def test_an_empty_folder_is_not_an_error(source_env: SourceEnv) -> None:
    (source_env.root / "empty-dir").mkdir()
    entries = {p: err for p, _, _, _, err in walk_as_served(source_env)}
    assert entries["empty-dir"] is None


def test_a_name_that_is_not_utf8_does_not_stop_the_walk(source_env: SourceEnv) -> None:
    with open(os.fsencode(source_env.root) + b"/caf\xe9.txt", "wb") as f:
        f.write(b"latin-1")
    write(source_env.root, "z-after.txt")
    source = source_env.source()
    entries = {e.path: e for e in source.walk()}
    assert "z-after.txt" in entries
    name = b"caf\xe9.txt".decode("utf-8", "surrogateescape")
    if "names that are not valid UTF-8" in source.features.hidden_kinds:
        assert name not in entries
    else:
        assert entries[name].kind is EntryKind.FILE
        assert entries[name].size == len(b"latin-1")


def test_mtimes_before_1970_and_after_2100_are_listed_as_on_disk(source_env: SourceEnv) -> None:
    write(source_env.root, "old.txt")
    write(source_env.root, "future.txt")
    os.utime(source_env.root / "old.txt", (BEFORE_1970, BEFORE_1970))
    os.utime(source_env.root / "future.txt", (AFTER_2100, AFTER_2100))
    entries = {e.path: e for e in source_env.source().walk()}
    assert entries["future.txt"].mtime_ns == AFTER_2100 * 10**9
    if source_env.backend == "nfs" and source_env.address.nfs_version == 3:
        # NFSv3 carries unsigned 32-bit seconds: the server sends the time wrapped
        # (documented in sharelift.storage.nfs_source); NFSv4 is tested below.
        assert entries["old.txt"].mtime_ns == (BEFORE_1970 + 2**32) * 10**9
        v4 = {e.path: e for e in source_env.source(nfs_version=4).walk()}
        assert v4["old.txt"].mtime_ns == BEFORE_1970 * 10**9
        assert source_env.source(nfs_version=4).stat("old.txt").mtime_ns == BEFORE_1970 * 10**9
    else:
        assert entries["old.txt"].mtime_ns == BEFORE_1970 * 10**9


def test_what_the_server_hides_is_declared(source_env: SourceEnv) -> None:
    """A symlink and a fifo are either listed or declared hidden: never silently lost."""
    write(source_env.root, "target.txt")
    (source_env.root / "link").symlink_to("target.txt")
    os.mkfifo(source_env.root / "fifo")
    source = source_env.source()
    entries = {e.path: e for e in source.walk()}
    hidden = source.features.hidden_kinds
    if "link" not in entries:
        assert "symlinks" in hidden
    else:
        assert entries["link"].kind is EntryKind.SYMLINK
    if "fifo" not in entries:
        assert any("special files" in kind for kind in hidden)
    else:
        assert entries["fifo"].kind is EntryKind.OTHER


def test_error_entries_keep_the_size_and_mtime_the_listing_gave(source_env: SourceEnv) -> None:
    """A file the walk reports with an error still carries its listed size and mtime."""
    write(source_env.root, "tab\there.txt", b"12345")
    os.utime(source_env.root / "tab\there.txt", (AFTER_2100, AFTER_2100))
    entries = {e.path: e for e in source_env.source().walk()}
    entry = entries["tab\there.txt"]
    assert (entry.size, entry.mtime_ns) == (5, AFTER_2100 * 10**9)
