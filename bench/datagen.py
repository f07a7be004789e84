"""The benchmark's data sets, generated deterministically (same seed, same bytes).

* ``small`` (S): ``s_files`` files of 1-64 KiB spread over ``s_folders`` folders.
* ``big`` (B): ``b_files`` files of ``b_mib`` MiB each.
* ``many`` (M): ``m_files`` empty-to-tiny files (3 in 4 empty, the rest 1-32 bytes) in
  folders of 1,000, two levels deep: for scanning and memory.

Everything is world-readable (NFS clients are squashed to uid 65534; Samba reads as its
own unix user). A stamp file records the parameters, so ``--data DIR`` reuses a set that
was generated with the same ones and regenerates only the sets that differ.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

STAMP = ".bench-stamp.json"
SEED = 20240531
M_PER_FOLDER = 1000


@dataclass(frozen=True)
class DataSpec:
    s_files: int
    s_folders: int
    b_files: int
    b_mib: int
    m_files: int


def _small(root: Path, spec: DataSpec) -> None:
    rng = random.Random(SEED)
    folders = [root / f"d{i:03d}" for i in range(spec.s_folders)]
    for folder in folders:
        folder.mkdir(parents=True, mode=0o755)
    for i in range(spec.s_files):
        size = rng.randint(1024, 64 * 1024)
        path = folders[i % spec.s_folders] / f"f{i:06d}.bin"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, rng.randbytes(size))
        finally:
            os.close(fd)


def _big_one(path: str, index: int, mib: int) -> None:
    # One random 8 MiB block per file, made distinct per 8 MiB by a counter in front:
    # generation runs at disk speed instead of the RNG's.
    block = bytearray(random.Random(SEED + 1 + index).randbytes(8 * 1024 * 1024))
    with open(path, "wb") as f:
        left = mib * 1024 * 1024
        n = 0
        while left > 0:
            block[:16] = hashlib.md5(f"{index}:{n}".encode()).digest()
            piece = block[: min(left, len(block))]
            f.write(piece)
            left -= len(piece)
            n += 1
    os.chmod(path, 0o644)


def _many_folder(root: str, first: int, count: int) -> None:
    """``count`` files numbered from ``first`` into one folder (``root`` already exists)."""
    fd_dir = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    payload = b"sharelift-benchmark-tiny-file-32b"
    try:
        for i in range(first, first + count):
            fd = os.open(f"f{i:07d}", flags, 0o644, dir_fd=fd_dir)
            if i % 4 == 0:
                os.write(fd, payload[: 1 + (i * 7919) % 32])
            os.close(fd)
    finally:
        os.close(fd_dir)


def _many_chunk(root: str, folders: list[tuple[str, int, int]]) -> None:
    for rel, first, count in folders:
        _many_folder(os.path.join(root, rel), first, count)


def _many(root: Path, spec: DataSpec, processes: int = 2) -> None:
    plan: list[tuple[str, int, int]] = []
    n = 0
    folder = 0
    while n < spec.m_files:
        count = min(M_PER_FOLDER, spec.m_files - n)
        rel = f"a{folder // 100:03d}/b{folder % 100:02d}"
        (root / rel).mkdir(parents=True, mode=0o755)
        plan.append((rel, n, count))
        n += count
        folder += 1
    for dirpath, _dirs, _files in os.walk(root):
        os.chmod(dirpath, 0o755)
    chunks = [plan[i::processes] for i in range(processes)]
    with ProcessPoolExecutor(processes) as pool:
        for f in [pool.submit(_many_chunk, str(root), c) for c in chunks]:
            f.result()


def _sets(spec: DataSpec) -> dict[str, dict[str, int]]:
    return {
        "small": {"files": spec.s_files, "folders": spec.s_folders},
        "big": {"files": spec.b_files, "mib": spec.b_mib},
        "many": {"files": spec.m_files},
    }


def generate(data: Path, spec: DataSpec, log=print) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Make (or reuse) the three sets under ``data``; returns seconds spent per set."""
    data.mkdir(parents=True, exist_ok=True)
    data.chmod(0o755)
    stamp_path = data / STAMP
    try:
        old = json.loads(stamp_path.read_text())
    except (OSError, ValueError):
        old = {}
    wanted = _sets(spec)
    seconds: dict[str, float] = {}
    for name, params in wanted.items():
        target = data / name
        if old.get(name) == params and target.is_dir():
            log(f"data: reusing {name} {params}")
            continue
        if target.exists():
            shutil.rmtree(target)
        stamp = {k: v for k, v in old.items() if k != name}
        stamp_path.write_text(json.dumps(stamp))
        t = time.perf_counter()
        target.mkdir(mode=0o755)
        if name == "small":
            _small(target, spec)
        elif name == "big":
            with ProcessPoolExecutor(2) as pool:
                futures = [
                    pool.submit(_big_one, str(target / f"big{i:02d}.bin"), i, spec.b_mib)
                    for i in range(spec.b_files)
                ]
                for f in futures:
                    f.result()
        else:
            _many(target, spec)
        target.chmod(0o755)
        seconds[name] = time.perf_counter() - t
        log(f"data: generated {name} {params} in {seconds[name]:.1f} s")
        old = {**stamp, name: params}
        stamp_path.write_text(json.dumps(old))
    return seconds


def file_list(root: Path) -> list[str]:
    """Relative paths of every regular file under ``root``, sorted."""
    out = []
    for dirpath, dirs, files in os.walk(root):
        dirs.sort()
        rel = os.path.relpath(dirpath, root)
        for name in sorted(files):
            out.append(name if rel == "." else f"{rel}/{name}")
    return out


def totals(root: Path) -> tuple[int, int]:
    files = size = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            files += 1
            size += os.stat(os.path.join(dirpath, name)).st_size
    return files, size


def spec_dict(spec: DataSpec) -> dict[str, int]:
    return asdict(spec)
