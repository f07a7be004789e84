"""Folders listed over a ``Channel``: the raw QUERY_DIRECTORY buffers of one folder.

The same requests as smbprotocol's listing in ``sharelift.storage.smb_source``, packed
here: CREATE (the folder) + QUERY_DIRECTORY + QUERY_DIRECTORY + CLOSE in one compound.
When the second query answers STATUS_NO_MORE_FILES the folder is complete in one round
trip (most folders). Otherwise the folder is opened again and queried until the server
says there is no more: only STATUS_NO_MORE_FILES (or STATUS_NO_SUCH_FILE, a pattern that
matches nothing) ends a listing, a short buffer never does.

Only the buffers are returned: the caller parses them with the same code as
smbprotocol's buffers, so names (odd, unmapped or not valid UTF-16 ones included),
sizes, times and attributes come out the same on both paths.

Errors: a refused CREATE or QUERY raises ``StatusError`` with its NTSTATUS (the caller
maps it to the folder's error, or hands DFS links and symlinks to smbprotocol's path);
a lost connection raises ``ConnectionLost`` (transient: the caller reconnects).
"""

from __future__ import annotations

from sharelift.storage.smb_fast import wire
from sharelift.storage.smb_fast.channel import Answer, Channel, Request

QUERY_SIZE = 256 * 1024  # output buffer of one QUERY_DIRECTORY, when the credits allow
_ENDS = frozenset({wire.STATUS_NO_MORE_FILES, wire.STATUS_NO_SUCH_FILE})


def list_folder(channel: Channel, wire_path: str, pattern: str, info_class: int) -> list[bytes]:
    """The QUERY_DIRECTORY buffers of the folder ``wire_path`` (a share path), in order."""
    buffers, complete = _list_in_one_compound(channel, wire_path, pattern, info_class)
    if complete:
        return buffers
    return _list_long(channel, wire_path, pattern, info_class)


def _query_size(channel: Channel, queries: int) -> int:
    """The output buffer of each of ``queries`` QUERY_DIRECTORY requests: as large as the
    server allows and the credits cover now (two left for the CREATE and the CLOSE)."""
    spare = max(1, (channel.credits - 2) // queries)
    return max(65536, min(QUERY_SIZE, channel.max_transact, spare * 65536))


def _query(file_id: bytes, info_class: int, flags: int, pattern: str, size: int) -> Request:
    return Request(
        wire.QUERY_DIRECTORY,
        wire.query_directory_body(file_id, info_class, flags, pattern, size),
        wire.credit_charge(size),
    )


def _buffer(answer: Answer) -> bytes | None:
    """The entries of a QUERY_DIRECTORY answer; ``None`` at the end of the listing."""
    if answer.status in _ENDS:
        return None
    answer.raise_for_status()
    return wire.query_directory_answer(answer.message)


def _list_in_one_compound(
    channel: Channel, wire_path: str, pattern: str, info_class: int
) -> tuple[list[bytes], bool]:
    size = _query_size(channel, 2)
    related = wire.RELATED_FILE_ID
    ids = channel.send(
        [
            Request(wire.CREATE, wire.create_directory_body(wire_path)),
            _query(related, info_class, wire.QUERY_RESTART_SCANS, pattern, size),
            _query(related, info_class, 0, pattern, size),
            Request(wire.CLOSE, wire.close_body(related)),
        ],
        related=True,
    )
    created, *queried, _closed = [channel.wait(i) for i in ids]
    created.raise_for_status()
    found = [_buffer(answer) for answer in queried]
    buffers = [b for b in found if b is not None]
    return buffers, len(buffers) < len(found)


def _list_long(channel: Channel, wire_path: str, pattern: str, info_class: int) -> list[bytes]:
    size = _query_size(channel, 1)
    related = wire.RELATED_FILE_ID
    created_id, queried_id = channel.send(
        [
            Request(wire.CREATE, wire.create_directory_body(wire_path)),
            _query(related, info_class, wire.QUERY_RESTART_SCANS, pattern, size),
        ],
        related=True,
    )
    created = channel.wait(created_id)
    queried = channel.wait(queried_id)
    created.raise_for_status()
    file_id = wire.create_answer(created.body)[0]
    buffers: list[bytes] = []
    try:
        buf = _buffer(queried)
        while buf is not None:
            buffers.append(buf)
            (queried_id,) = channel.send(
                [_query(file_id, info_class, 0, pattern, _query_size(channel, 1))]
            )
            buf = _buffer(channel.wait(queried_id))
    finally:
        channel.close_quietly(file_id)
    return buffers
