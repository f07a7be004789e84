"""``sharelift demo``: a migration you can watch, with no cloud account.

Generates a small sample share (awkward names included), starts the embedded
OSS-compatible server on 127.0.0.1, copies the share into a bucket with verification of
every object's CRC-64, runs the copy a second time to show that nothing is copied twice,
and stops the server. ``--source nfs`` or ``--source smb`` serves the same files through
nfs-ganesha or Samba on loopback first.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import time
from collections import Counter
from pathlib import Path

from sharelift.storage import Destination, EntryKind, Source, open_destination, open_source
from sharelift.transfer import FileOutcome, Status, copy_file

SAMPLE_NAMES = [
    "reports/2024/q1 summary.txt",
    "reports/2024/q2 #draft.txt",
    "photos/été/plage 1.jpg",
    "photos/été/plage 2.jpg",
    "data/readings+raw.csv",
    "data/100% done.txt",
    "unicode/Hello, 世界.txt",
    "empty.txt",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        choices=["local", "nfs", "smb"],
        default="local",
        help="serve the sample share from a local folder, nfs-ganesha or Samba",
    )
    parser.add_argument(
        "--workdir", default=".work/demo", help="where sample files and server data go"
    )
    parser.add_argument("--files", type=int, default=200, help="number of generated files")


def make_sample_share(root: Path, files: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    for name in SAMPLE_NAMES:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"" if name == "empty.txt" else rng.randbytes(rng.randint(10, 4000)))
    for i in range(max(0, files - len(SAMPLE_NAMES))):
        path = root / f"bulk/{i % 10:02d}/file-{i:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(rng.randbytes(rng.randint(0, 64 * 1024)))
    big = root / "media/big-video.bin"
    big.parent.mkdir(parents=True, exist_ok=True)
    big.write_bytes(rng.randbytes(80 * 1024 * 1024 + 123))  # above the multipart threshold
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o644)


def migrate(source: Source, destination: Destination) -> tuple[list[FileOutcome], float]:
    started = time.monotonic()
    outcomes = []
    for entry in source.walk():
        if entry.kind is EntryKind.FILE and entry.error is None:
            outcomes.append(copy_file(source, destination, entry, entry.path))
    return outcomes, time.monotonic() - started


def verify(destination: Destination, outcomes: list[FileOutcome]) -> list[str]:
    """Keys whose stored size or CRC-64 differs from what was read at the source."""
    bad = []
    for o in outcomes:
        if o.status is Status.COPIED:
            info = destination.head(o.key)
            if info is None or info.size != o.size or info.crc64 != o.crc64:
                bad.append(o.key)
    return bad


def summary(label: str, outcomes: list[FileOutcome], seconds: float) -> str:
    counts = Counter(o.status.value for o in outcomes)
    copied = sum(o.size for o in outcomes if o.status is Status.COPIED)
    rate = copied / seconds / 1e6 if seconds else 0.0
    lines = [
        f"{label}: {len(outcomes)} files considered, {counts['copied']} copied "
        f"({copied / 1e6:.1f} MB, {rate:.1f} MB/s), {counts['skipped']} skipped, "
        f"{counts['failed']} failed, in {seconds:.2f} s"
    ]
    for reason, n in Counter(o.reason for o in outcomes if o.status is Status.SKIPPED).items():
        lines.append(f"  skipped {n}: {reason}")
    for o in outcomes:
        if o.status is Status.FAILED:
            lines.append(f"  failed {o.path}: {o.reason}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from sharelift.testbed.oss import OssServer

    work = Path(args.workdir).resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    work.chmod(0o755)
    share = work / "share"
    print(f"sharelift demo: generating {args.files} sample files (+1 of 80 MB) in {share}")
    make_sample_share(share, args.files)

    servers = []
    try:
        oss = OssServer(work / "ossd")
        oss.start()
        servers.append(oss)
        oss.create_bucket("sharelift-demo")
        dest_address = oss.destination_address(
            name="demo-bucket", bucket="sharelift-demo", prefix="migrated/"
        )
        print(f"sharelift demo: OSS-compatible server at {oss.endpoint}, bucket sharelift-demo")
        if args.source == "nfs":
            from sharelift.testbed.nfs import NfsServer

            nfs = NfsServer(share, work / "nfs")
            nfs.start()
            servers.append(nfs)
            src_address = nfs.source_address(name="demo-share")
        elif args.source == "smb":
            from sharelift.testbed.smb import SmbServer

            smb = SmbServer(share, work / "smb")
            smb.start()
            servers.append(smb)
            src_address = smb.source_address(name="demo-share")
        else:
            from sharelift.addresses import SourceAddress

            src_address = SourceAddress(name="demo-share", protocol="local", path=str(share))
        with open_source(src_address) as source, open_destination(dest_address) as destination:
            source.check()
            destination.check()
            print(
                f"sharelift demo: migrating {source.display_url()} -> {destination.display_url()}"
            )
            outcomes, seconds = migrate(source, destination)
            print(summary("first run", outcomes, seconds))
            bad = verify(destination, outcomes)
            print(
                f"verify: {len(outcomes) - len(bad)} objects match their source CRC-64, "
                f"{len(bad)} differ"
            )
            again, seconds2 = migrate(source, destination)
            print(summary("second run (nothing changed)", again, seconds2))
            failed = [o for o in outcomes if o.status is Status.FAILED]
            return 1 if bad or failed or any(o.status is Status.COPIED for o in again) else 0
    finally:
        for server in reversed(servers):
            server.stop()
