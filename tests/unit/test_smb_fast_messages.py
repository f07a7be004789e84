"""The SMB fast read path's own message handling, checked against smbprotocol's (the
library whose session keys it uses) and on answers made up byte by byte: pure logic, no
server (the integration tests in ``tests/integration/test_smb_fast_reads.py`` read from
Samba)."""

from __future__ import annotations

import os
import struct
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from sharelift.storage.smb_fast import security, wire
from sharelift.storage.smb_fast.channel import Channel

KEY = bytes(range(16))
SESSION_ID = 0x1122334455667788


def smbprotocol_connection(dialect: int, signing: int | None, cipher: int | None) -> Any:
    from smbprotocol.connection import Connection

    connection = Connection(uuid.uuid4(), "127.0.0.1", 445)
    connection.dialect = dialect
    connection.signing_algorithm_id = signing
    connection.cipher_id = cipher
    return connection


@pytest.mark.parametrize(
    ("dialect", "algorithm"),
    [
        (0x0311, security.AES_GMAC),
        (0x0311, security.AES_CMAC),
        (0x0302, security.AES_CMAC),
        (0x0210, security.HMAC_SHA256),
    ],
)
def test_signatures_are_the_ones_smbprotocol_computes(dialect: int, algorithm: int) -> None:
    signing = algorithm if dialect >= 0x0311 else None
    connection = smbprotocol_connection(dialect, signing, None)
    message = bytearray(wire.header(wire.READ, 42, 1, 1, wire.FLAG_SIGNED, 7, SESSION_ID))
    message += wire.read_body(b"\x01" * 16, 0, 65536)
    ours = security.Signer(algorithm, KEY).signature(message, 42, False)
    theirs = connection._generate_signature(bytes(message), KEY, 42, False, wire.READ)
    assert ours == theirs


def test_an_answer_with_a_wrong_signature_is_refused_and_a_right_one_accepted() -> None:
    signer = security.Signer(security.AES_CMAC, KEY)
    answer = bytearray(wire.header(wire.CLOSE, 5, 1, 1, wire.FLAG_SIGNED, 7, SESSION_ID))
    answer += b"\0" * 60
    answer[48:64] = signer.signature(answer, 5, True)
    signer.verify(memoryview(bytearray(answer)), 5)
    answer[70] ^= 1
    with pytest.raises(security.SignatureMismatch):
        signer.verify(memoryview(answer), 5)


@pytest.mark.parametrize(
    "cipher",
    [security.AES_128_CCM, security.AES_128_GCM, security.AES_256_CCM, security.AES_256_GCM],
)
def test_sealed_messages_open_with_smbprotocol_and_its_sealed_ones_open_here(cipher: int) -> None:
    connection = smbprotocol_connection(0x0311, security.AES_GMAC, cipher)
    size = 32 if cipher in (security.AES_256_CCM, security.AES_256_GCM) else 16
    to_server, to_client = os.urandom(size), os.urandom(size)
    theirs = SimpleNamespace(
        session_id=SESSION_ID, encryption_key=to_client, decryption_key=to_server
    )
    connection.session_table[SESSION_ID] = theirs
    sealer = security.Sealer(cipher, to_server, to_client, SESSION_ID)
    request = wire.header(wire.CREATE, 3, 1, 1, 0, 7, SESSION_ID) + wire.create_body("a\\b.txt")

    from smbprotocol.connection import SMB2TransformHeader

    sealed = SMB2TransformHeader()
    sealed.unpack(sealer.seal(request))
    assert connection._decrypt(sealed) == request
    answer = os.urandom(300)
    assert sealer.open(memoryview(connection._encrypt(answer, theirs).pack())) == answer


def channel(signed: bool = True) -> Channel:
    """A channel on no connection: only its bookkeeping of answers is exercised."""
    connection = SimpleNamespace(
        dialect=0x0311,
        max_read_size=8 * 1024 * 1024,
        max_transact_size=8 * 1024 * 1024,
        cipher_id=None,
        signing_algorithm_id=1,
    )
    session = SimpleNamespace(
        session_id=SESSION_ID,
        encrypt_data=False,
        signing_key=KEY if signed else None,
        signing_required=signed,
    )
    tree = SimpleNamespace(tree_connect_id=7, encrypt_data=False)
    return Channel(connection, session, tree)


def answer(
    message_id: int,
    status: int = 0,
    granted: int = 1,
    flags: int = wire.FLAG_SERVER_TO_REDIR,
    body: bytes = b"\0" * 8,
    signer: security.Signer | None = None,
    next_command: int = 0,
) -> bytearray:
    message = bytearray(wire.header(wire.READ, message_id, 1, granted, flags, 7, SESSION_ID))
    struct.pack_into("<I", message, 8, status)
    struct.pack_into("<I", message, 20, next_command)
    message += body
    if signer is not None:
        message[16:20] = struct.pack("<I", flags | wire.FLAG_SIGNED)
        message[48:64] = signer.signature(message, message_id, True)
    return message


def test_an_interim_answer_grants_credits_and_the_final_one_is_the_answer() -> None:
    ch = channel(signed=False)
    ch._outstanding.add(9)
    interim = answer(9, status=wire.STATUS_PENDING, granted=30, flags=wire.FLAG_ASYNC | 1)
    ch._file_answers(memoryview(interim), sealed=False)
    assert 9 not in ch._answers and 9 in ch._outstanding
    assert ch.credits == 30
    ch._file_answers(memoryview(answer(9, granted=0, body=b"final!!!")), sealed=False)
    assert bytes(ch._answers[9].body) == b"final!!!"
    assert 9 not in ch._outstanding


def test_compounded_answers_in_one_frame_are_each_filed_and_unwanted_ones_dropped() -> None:
    signer = security.Signer(security.AES_CMAC, KEY)
    ch = channel()
    ch._outstanding.update({1, 2, 3})
    ch.forget([2])
    first = answer(1, body=b"\0" * 8, signer=signer, next_command=72)
    second = answer(2, signer=signer, next_command=72)
    third = answer(3, status=0xC0000034, signer=signer)
    ch._file_answers(memoryview(first + second + third), sealed=False)
    assert sorted(ch._answers) == [1, 3]
    assert ch._answers[3].status == 0xC0000034
    assert ch.credits == 3


@pytest.mark.parametrize("status", [0, wire.STATUS_END_OF_FILE, 0xC0000034])
def test_an_unsigned_answer_on_a_signed_session_is_refused(status: int) -> None:
    ch = channel()
    ch._outstanding.add(4)
    with pytest.raises(security.SignatureMismatch):
        ch._file_answers(memoryview(answer(4, status=status)), sealed=False)


def test_an_unsigned_session_expired_on_a_signed_session_is_taken() -> None:
    """Servers cannot sign the answer that says the session is gone."""
    ch = channel()
    ch._outstanding.add(4)
    ch._file_answers(memoryview(answer(4, status=0xC000035C)), sealed=False)
    assert ch._answers[4].status == 0xC000035C


def test_a_read_costs_one_credit_per_64_kib_started() -> None:
    assert [wire.credit_charge(n) for n in (0, 1, 65536, 65537, 1024 * 1024)] == [1, 1, 1, 2, 16]


def test_request_layouts_have_the_sizes_ms_smb2_gives() -> None:
    assert len(wire.header(wire.CREATE, 0, 1, 1, 0, 0, 0)) == 64
    assert len(wire.create_body("x")) == 56 + 2
    assert len(wire.read_body(wire.RELATED_FILE_ID, 0, 1)) == 49
    assert len(wire.close_body(wire.RELATED_FILE_ID)) == 24


def test_read_data_is_a_read_only_view_of_the_answer_without_a_copy() -> None:
    """READ answers are handed on as views of the frame they came in (which nothing
    writes again); a read-only view cannot be changed by whoever it is handed to."""
    payload = os.urandom(1000)
    body = struct.pack("<HBBIII", 17, wire.HEADER_SIZE + 16, 0, len(payload), 0, 0)
    frame = bytearray(wire.HEADER_SIZE) + bytearray(body) + bytearray(payload)
    data = wire.read_answer(memoryview(frame))
    assert data == payload
    assert isinstance(data, memoryview) and data.readonly
    assert data.obj is frame  # a view of the frame, not a copy
