"""The few SMB2 messages the fast path sends and reads, packed with ``struct`` (MS-SMB2 2.2).

Hand-written rather than smbprotocol's Structure classes on purpose: those build a field
object per field per message, which is what the fast path exists to avoid.
"""

from __future__ import annotations

import struct

PROTOCOL_ID = b"\xfeSMB"
TRANSFORM_ID = b"\xfdSMB"
HEADER_SIZE = 64

CREATE = 0x0005
CLOSE = 0x0006
READ = 0x0008
ECHO = 0x000D
QUERY_DIRECTORY = 0x000E

FLAG_SERVER_TO_REDIR = 0x00000001
FLAG_ASYNC = 0x00000002
FLAG_RELATED = 0x00000004
FLAG_SIGNED = 0x00000008

STATUS_SUCCESS = 0x00000000
STATUS_PENDING = 0x00000103
STATUS_BUFFER_OVERFLOW = 0x80000005
STATUS_END_OF_FILE = 0xC0000011
STATUS_NO_MORE_FILES = 0x80000006
STATUS_NO_SUCH_FILE = 0xC000000F  # also ends a listing: the pattern matched nothing

# ProtocolId, StructureSize, CreditCharge, Status, Command, CreditRequest/Response, Flags,
# NextCommand, MessageId, Reserved (or the high half of AsyncId), TreeId, SessionId, Signature
HEADER = struct.Struct("<4sHHIHHIIQIIQ16s")
# The response fields the reader needs: CreditCharge .. MessageId (offsets 6..32).
RESPONSE_FIELDS = struct.Struct("<HIHHIIQ")

RELATED_FILE_ID = b"\xff" * 16

FILE_READ_DATA = 0x00000001
FILE_READ_EA = 0x00000008
FILE_READ_ATTRIBUTES = 0x00000080
SYNCHRONIZE = 0x00100000
FILE_SHARE_ALL = 0x00000007  # read, write, delete: never lock users of a live share out
FILE_OPEN = 0x00000001
FILE_DIRECTORY_FILE = 0x00000001
FILE_ATTRIBUTE_DIRECTORY = 0x00000010
FILE_NON_DIRECTORY_FILE = 0x00000040
FILE_OPEN_REPARSE_POINT = 0x00200000
IMPERSONATION = 0x00000002
CLOSE_FLAG_POSTQUERY_ATTRIB = 0x0001

# SMB2 CREATE request without the name (StructureSize 57 counts the first name byte).
_CREATE = struct.Struct("<HBBIQQIIIIIHHII")
_READ = struct.Struct("<HBBIQ16sIIIHHB")
_CLOSE = struct.Struct("<HHI16s")
_ECHO = struct.Struct("<HH")
# SMB2 QUERY_DIRECTORY request without the pattern (StructureSize 33 counts its first byte).
_QUERY_DIRECTORY = struct.Struct("<HBBI16sHHI")
QUERY_RESTART_SCANS = 0x01


def header(
    command: int,
    message_id: int,
    credit_charge: int,
    credit_request: int,
    flags: int,
    tree_id: int,
    session_id: int,
    next_command: int = 0,
) -> bytes:
    return HEADER.pack(
        PROTOCOL_ID,
        HEADER_SIZE,
        credit_charge,
        0,
        command,
        credit_request,
        flags,
        next_command,
        message_id,
        0,
        tree_id,
        session_id,
        b"\0" * 16,
    )


def create_body(
    wire_path: str,
    *,
    access: int = FILE_READ_DATA | FILE_READ_ATTRIBUTES | SYNCHRONIZE,
    attributes: int = 0,
    options: int = FILE_NON_DIRECTORY_FILE | FILE_OPEN_REPARSE_POINT,
) -> bytes:
    """CREATE (by default: open an existing file for reading, the link itself if it is
    one)."""
    name = wire_path.encode("utf-16-le", "surrogatepass")
    body = _CREATE.pack(
        57,
        0,
        0,  # no oplock: nothing is cached, the file is read once
        IMPERSONATION,
        0,
        0,
        access,
        attributes,
        FILE_SHARE_ALL,
        FILE_OPEN,
        options,
        HEADER_SIZE + 56,
        len(name),
        0,
        0,
    )
    return body + (name or b"\0")


def create_directory_body(wire_path: str) -> bytes:
    """CREATE opening a folder to list it, asking what smbclient's ``SMBDirectoryIO``
    asks (read data, attributes and EAs; a folder only; links followed), so a folder
    either path may list the other may too."""
    return create_body(
        wire_path,
        access=FILE_READ_DATA | FILE_READ_ATTRIBUTES | FILE_READ_EA,
        attributes=FILE_ATTRIBUTE_DIRECTORY,
        options=FILE_DIRECTORY_FILE,
    )


def query_directory_body(
    file_id: bytes, info_class: int, flags: int, pattern: str, length: int
) -> bytes:
    name = pattern.encode("utf-16-le", "surrogatepass")
    body = _QUERY_DIRECTORY.pack(
        33, info_class, flags, 0, file_id, HEADER_SIZE + 32, len(name), length
    )
    return body + (name or b"\0")


def read_body(file_id: bytes, offset: int, length: int) -> bytes:
    return _READ.pack(49, 0x50, 0, length, offset, file_id, 0, 0, 0, 0, 0, 0)


def close_body(file_id: bytes) -> bytes:
    """CLOSE asking for the attributes after the close: the "after" of a read, free."""
    return _CLOSE.pack(24, CLOSE_FLAG_POSTQUERY_ATTRIB, 0, file_id)


def echo_body() -> bytes:
    return _ECHO.pack(4, 0)


def credit_charge(payload: int) -> int:
    """Credits a request moving ``payload`` bytes costs (MS-SMB2 3.1.5.2)."""
    return (max(0, payload - 1) // 65536) + 1


def create_answer(body: memoryview) -> tuple[bytes, int, int, int, int]:
    """(FileId, LastWriteTime, ChangeTime, EndOfFile, FileAttributes) of a CREATE answer."""
    write, change, _alloc, size, attributes = struct.unpack_from("<qqqqI", body, 24)
    return bytes(body[64:80]), write, change, size, attributes


def close_answer(body: memoryview) -> tuple[int, int, int] | None:
    """(LastWriteTime, ChangeTime, EndOfFile) of a CLOSE answer with POSTQUERY_ATTRIB."""
    if len(body) < 60:
        return None
    flags = struct.unpack_from("<H", body, 2)[0]
    if not flags & CLOSE_FLAG_POSTQUERY_ATTRIB:
        return None
    write, change, _alloc, size = struct.unpack_from("<qqqq", body, 24)
    return write, change, size


def read_answer(message: memoryview) -> memoryview:
    """The data of a READ answer (``message`` starts at its SMB2 header), read-only and
    without a copy: the frame it lies in was received into a buffer of its own that
    nothing writes again (``Channel._read_frame``), so the view is as immutable as bytes."""
    offset, _reserved, length = struct.unpack_from("<BBI", message, HEADER_SIZE + 2)
    return message[offset : offset + length].toreadonly()


def query_directory_answer(message: memoryview) -> bytes:
    """The entries buffer of a QUERY_DIRECTORY answer (``message`` starts at its SMB2
    header)."""
    offset, length = struct.unpack_from("<HI", message, HEADER_SIZE + 2)
    return bytes(message[offset : offset + length])
