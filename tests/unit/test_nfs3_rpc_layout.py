"""The ctypes declarations of nfs3_rpc match libnfs 4.0's nfsc/libnfs-raw-nfs.h.

A wrong offset would not fail a call: it would read another field (a size as a time, a
handle's length as its pointer). The figures are checked as numbers for 64-bit Linux, and
against the C compiler's own ``sizeof``/``offsetof`` over the installed header when both
are there (libnfs-dev and a C compiler).
"""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest

from sharelift.storage import nfs3_rpc as r

HEADER = Path("/usr/include/nfsc/libnfs-raw-nfs.h")

# (ctypes structure, C type, {ctypes field path: C member path})
LAYOUTS = [
    (
        r.Fattr3,
        "fattr3",
        {"type": "type", "size": "size", "mtime": "mtime", "ctime": "ctime"},
    ),
    (r.PostOpAttr, "post_op_attr", {"attributes": "post_op_attr_u.attributes"}),
    (r.NfsFh3, "nfs_fh3", {"data_len": "data.data_len", "data_val": "data.data_val"}),
    (r.Read3Args, "READ3args", {"file": "file", "offset": "offset", "count": "count"}),
    (
        r.Read3Res,
        "READ3res",
        {"status": "status", "resok": "READ3res_u.resok"},
    ),
    (
        r.Read3ResOk,
        "READ3resok",
        {"file_attributes": "file_attributes", "count": "count", "eof": "eof", "data": "data"},
    ),
    (r.Lookup3Args, "LOOKUP3args", {"dir": "what.dir", "name": "what.name"}),
    (r.Lookup3Res, "LOOKUP3res", {"resok": "LOOKUP3res_u.resok"}),
    (
        r.Lookup3ResOk,
        "LOOKUP3resok",
        {"object": "object", "obj_attributes": "obj_attributes"},
    ),
    (r.Getattr3Args, "GETATTR3args", {"object": "object"}),
    (r.Getattr3Res, "GETATTR3res", {"obj_attributes": "GETATTR3res_u.resok.obj_attributes"}),
]


def _ctypes_layout() -> dict[str, int]:
    out: dict[str, int] = {}
    for struct, c_name, fields in LAYOUTS:
        out[f"sizeof {c_name}"] = ctypes.sizeof(struct)
        for field, member in fields.items():
            out[f"offsetof {c_name}.{member}"] = getattr(struct, field).offset
    return out


@pytest.mark.skipif(ctypes.sizeof(ctypes.c_void_p) != 8, reason="layout checked for 64-bit")
def test_the_nfsv3_reply_structures_have_libnfs_4_layout_on_64_bit_linux() -> None:
    layout = _ctypes_layout()
    assert layout["sizeof fattr3"] == 88
    assert layout["offsetof fattr3.size"] == 24
    assert layout["offsetof fattr3.mtime"] == 72 and layout["offsetof fattr3.ctime"] == 80
    assert layout["sizeof post_op_attr"] == 96
    assert layout["offsetof post_op_attr.post_op_attr_u.attributes"] == 8
    assert layout["sizeof READ3resok"] == 120
    assert layout["offsetof READ3resok.eof"] == 100 and layout["offsetof READ3resok.data"] == 104
    assert layout["offsetof READ3res.READ3res_u.resok"] == 8
    assert layout["sizeof READ3args"] == 32
    assert layout["sizeof LOOKUP3args"] == 24
    assert layout["offsetof LOOKUP3resok.obj_attributes"] == 16


@pytest.mark.skipif(not HEADER.exists(), reason="libnfs-dev (nfsc/libnfs-raw-nfs.h) not installed")
@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_the_nfsv3_structures_match_the_installed_libnfs_header(tmp_path: Path) -> None:
    expected = _ctypes_layout()
    lines = []
    for key in expected:
        what, name = key.split(" ", 1)
        if what == "sizeof":
            lines.append(f'    printf("{key} %zu\\n", sizeof({name}));')
        else:
            c_type, member = name.split(".", 1)
            lines.append(f'    printf("{key} %zu\\n", offsetof({c_type}, {member}));')
    program = tmp_path / "layout.c"
    program.write_text(
        "#include <stddef.h>\n#include <stdio.h>\n#include <stdint.h>\n"
        "#include <nfsc/libnfs-zdr.h>\n#include <nfsc/libnfs-raw-nfs.h>\n"
        "int main(void) {\n" + "\n".join(lines) + "\n    return 0;\n}\n"
    )
    binary = tmp_path / "layout"
    subprocess.run(["cc", "-o", str(binary), str(program)], check=True, capture_output=True)
    printed = subprocess.run([str(binary)], check=True, capture_output=True, text=True).stdout
    measured = {
        line.rsplit(" ", 1)[0]: int(line.rsplit(" ", 1)[1]) for line in printed.splitlines()
    }
    assert measured == expected
