"""Per-backend figures: walk rate, small-file reads/s, big-file MB/s, one process.

    .venv/bin/python bench/backends.py [--small 3000] [--big-mib 256]

Starts the test-bed servers on 127.0.0.1, generates the data once in a scratch folder,
and prints one table. It is a measurement, not a test: machines here are shared and
noisy, so compare the ratios within one run.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # the test servers in tests/servers/
    sys.path.insert(0, str(REPO))

from sharelift.addresses import SourceAddress  # noqa: E402
from sharelift.storage import EntryKind, Source, TransferConfig, open_destination, open_source  # noqa: E402


def make_data(root: Path, small: int, big_mib: int) -> None:
    rng = random.Random(1)
    for i in range(small):
        p = root / "small" / f"d{i % 50:02d}" / f"f{i:06d}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rng.randbytes(rng.randint(1024, 16 * 1024)))
    (root / "big").mkdir(exist_ok=True)
    with open(root / "big" / "big.bin", "wb") as f:
        block = os.urandom(8 * 1024 * 1024)
        for _ in range(big_mib // 8):
            f.write(block)
    for dirpath, _d, files in os.walk(root):
        os.chmod(dirpath, 0o755)
        for name in files:
            os.chmod(os.path.join(dirpath, name), 0o644)


def read_all(source: Source, path: str, chunk: int) -> int:
    n = 0
    with source.open(path) as f:
        while data := f.read(chunk):
            n += len(data)
    return n


def measure_source(label: str, address: SourceAddress) -> dict[str, float]:
    with open_source(address) as source:
        chunk = source.features.read_chunk_size
        t = time.perf_counter()
        entries = list(source.walk("small"))
        walk_s = time.perf_counter() - t
        files = [e for e in entries if e.kind is EntryKind.FILE]
        t = time.perf_counter()
        total = sum(read_all(source, e.path, chunk) for e in files)
        small_s = time.perf_counter() - t
        t = time.perf_counter()
        big = read_all(source, "big/big.bin", chunk)
        big_s = time.perf_counter() - t
    return {
        "walk entries/s": len(entries) / walk_s,
        "small files/s": len(files) / small_s,
        "small MB/s": total / small_s / 1e6,
        "big MB/s": big / big_s / 1e6,
    }


def measure_destination(label: str, dest_factory, data_root: Path) -> dict[str, float]:  # type: ignore[no-untyped-def]
    dest = dest_factory()
    small = sorted((data_root / "small").rglob("*.bin"))[:1000]
    blobs = [p.read_bytes() for p in small]
    t = time.perf_counter()
    for i, blob in enumerate(blobs):
        dest.put(f"small/{i}", io.BytesIO(blob), len(blob))
    small_s = time.perf_counter() - t
    big = data_root / "big" / "big.bin"
    size = big.stat().st_size
    t = time.perf_counter()
    with open(big, "rb") as f:
        dest.put("big.bin", f, size)
    big_s = time.perf_counter() - t
    dest.close()
    return {"small puts/s": len(blobs) / small_s, "big put MB/s": size / big_s / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", type=int, default=3000)
    parser.add_argument("--big-mib", type=int, default=256)
    args = parser.parse_args()

    from tests.servers.nfs import NfsServer
    from tests.servers.smb import SmbServer

    from sharelift.local.ossd import OssServer

    work = Path(tempfile.mkdtemp(prefix="sharelift-bench-"))
    work.chmod(0o755)
    data = work / "data"
    data.mkdir(mode=0o755)
    make_data(data, args.small, args.big_mib)
    servers = []
    try:
        nfs = NfsServer(data, work / "nfs")
        nfs.start()
        servers.append(nfs)
        smb = SmbServer(data, work / "smb")
        smb.start()
        servers.append(smb)
        oss = OssServer(work / "ossd")
        oss.start()
        servers.append(oss)
        oss.create_bucket("bench")

        rows: dict[str, dict[str, float]] = {}
        rows["source local"] = measure_source(
            "local", SourceAddress(name="local-src", protocol="local", path=str(data))
        )
        rows["source nfs"] = measure_source("nfs", nfs.source_address())
        rows["source smb"] = measure_source("smb", smb.source_address())
        transfer = TransferConfig()
        from sharelift.addresses import DestinationAddress

        (work / "dst").mkdir()
        rows["dest local"] = measure_destination(
            "local",
            lambda: open_destination(
                DestinationAddress(name="local-dst", kind="local", path=str(work / "dst")),
                transfer=transfer,
            ),
            data,
        )
        rows["dest oss (ossd)"] = measure_destination(
            "oss",
            lambda: open_destination(oss.destination_address(bucket="bench"), transfer=transfer),
            data,
        )
    finally:
        for s in reversed(servers):
            s.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(
        f"\nsmall set: {args.small} files of 1-16 KiB in 50 folders; big file: {args.big_mib} MiB"
    )
    for name, figures in rows.items():
        print(f"{name:18s} " + "  ".join(f"{k}: {v:,.0f}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
