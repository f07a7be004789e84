"""Summarise a py-spy ``--format raw`` profile (what ``run.py --profile DIR`` records).

    .venv/bin/python bench/pyspy_top.py DIR/engine_nfs-_local_S_w=2.txt [--top 25] [--under FUNC]

Prints the samples per process, the functions with the most samples of their own (self)
and the functions most often on the stack (inclusive). ``--under`` keeps only the stacks
that pass through a frame whose text contains FUNC (e.g. ``run_subtask``).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

_LINE = re.compile(r" \(([^()]*):\d+\)$")


def frame_name(frame: str) -> str:
    """'put (sharelift/storage/local_destination.py:123)' -> 'put (local_destination.py)'."""
    m = _LINE.search(frame)
    if not m:
        return frame
    path = m.group(1)
    return f"{frame[: m.start()]} ({path.rsplit('/', 1)[-1]})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("profile")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--under", help="only stacks through a frame containing this text")
    args = parser.parse_args()

    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    procs: Counter[str] = Counter()
    total = 0
    with open(args.profile, errors="replace") as f:
        for line in f:
            stack, _, count_text = line.rstrip("\n").rpartition(" ")
            if not count_text.isdigit():
                continue
            frames = stack.split(";")
            if args.under and not any(args.under in fr for fr in frames):
                continue
            n = int(count_text)
            total += n
            procs[frames[0][:90]] += n
            names = [frame_name(fr) for fr in frames[1:]]
            if names:
                own[names[-1]] += n
            for name in set(names):
                incl[name] += n
    print(f"{total} samples" + (f" under {args.under!r}" if args.under else ""))
    for name, n in procs.most_common(6):
        print(f"  {n:6d} {100 * n / total:5.1f}%  {name}")
    print("\nself:")
    for name, n in own.most_common(args.top):
        print(f"  {n:6d} {100 * n / total:5.1f}%  {name}")
    print("\ninclusive:")
    for name, n in incl.most_common(args.top):
        print(f"  {n:6d} {100 * n / total:5.1f}%  {name}")


if __name__ == "__main__":
    main()
