"""One authenticated SMB2 connection, taken over from smbprotocol after the tree connect.

smbprotocol negotiates, authenticates and connects the tree; ``Channel.open`` then retires
its receive thread (one last ECHO, after which the thread finds a transport that reports
the socket closed and ends) and keeps the socket, the session's keys and the credit
window. From there every request is packed, signed or sealed, and sent here, and every
answer is read, checked and handed out by message id, all on the caller's thread: no
second thread trades the GIL with it.

Credits (MS-SMB2 3.2.4.1.2, 3.2.5.1.4): a request costs ``CreditCharge`` message ids, and
is sent only while the server's grants cover it; every answer (interim ones too) grants
more. Each request asks for what it costs plus a top-up while the window is below
``CREDIT_TARGET``.

Interim answers (STATUS_PENDING with the async flag): the final answer follows under the
same message id; ``wait`` keeps reading until it comes.

Failures: anything wrong with the socket or the framing (reset, end of stream, time-out,
an answer whose signature or seal does not check) kills the channel and raises
``ConnectionLost`` (an OSError: the SMB source's retry policy takes it as transient and
reconnects). A request the server refuses raises ``StatusError`` with its NTSTATUS.
"""

from __future__ import annotations

import logging
import socket
import struct
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sharelift.storage.smb_fast import security, wire

log = logging.getLogger(__name__)

CREDIT_TARGET = 512  # credits kept granted: PREFETCH small files plus a big file's reads
CREDIT_TOP_UP = 64  # extra credits asked with one request while below the target
RECEIVE_TIMEOUT = 120.0  # seconds without a byte from the server before the link is dead
_ANY_MESSAGE = 0xFFFFFFFFFFFFFFFF  # oplock/lease breaks; never asked for, ignored
_LENGTH = struct.Struct(">I")
_KEEP_ALIVE = 0x85  # NetBIOS session keep-alive
# Answers a server cannot sign (the session and its key are gone); any other unsigned
# answer on a signed session is refused, lest a forged error (END_OF_FILE) cut a read.
_UNSIGNABLE = frozenset(
    {
        0xC0000203,  # STATUS_USER_SESSION_DELETED
        0xC000035C,  # STATUS_NETWORK_SESSION_EXPIRED
        0xC000006D,  # STATUS_LOGON_FAILURE
        0xC0000022,  # STATUS_ACCESS_DENIED (of a request outside any session)
    }
)
SMB_2_1_0 = 0x0210
SMB_3_0_0 = 0x0300
SMB_3_1_1 = 0x0311


class ConnectionLost(ConnectionError):
    """The channel's connection failed; it cannot be used again (reconnect)."""


class NotForFastPath(Exception):
    """This server or share needs something the fast path does not do (the classic path
    serves it instead)."""


class StatusError(Exception):
    """The server answered a request with an error NTSTATUS."""

    def __init__(self, ntstatus: int, command: int) -> None:
        super().__init__(f"NTSTATUS 0x{ntstatus:08x} for SMB2 command {command}")
        self.ntstatus = ntstatus
        self.command = command


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    command: int
    message: memoryview  # from the SMB2 header to the end of this answer

    @property
    def body(self) -> memoryview:
        return self.message[wire.HEADER_SIZE :]

    def raise_for_status(self) -> None:
        if self.status != wire.STATUS_SUCCESS:
            raise StatusError(self.status, self.command)


@dataclass(frozen=True, slots=True)
class Request:
    command: int
    body: bytes
    charge: int = 1


class _RetiredTransport:
    """What smbprotocol's receive thread finds after the hand-over: sends still go out,
    a receive reports the socket closed, so the thread ends without touching it."""

    def __init__(self, tcp: Any) -> None:
        self._tcp = tcp

    @property
    def connected(self) -> bool:
        return bool(self._tcp.connected)

    def send(self, data: bytes) -> None:
        self._tcp.send(data)

    def recv(self, timeout: float) -> bytes:
        return b""

    def close(self) -> None:
        self._tcp.close()


class Channel:
    """Requests and answers on one session and tree of a connection taken over."""

    def __init__(self, connection: Any, session: Any, tree: Any) -> None:
        self._connection = connection
        self.session_id: int = session.session_id
        self.tree_id: int = tree.tree_connect_id
        self.dialect: int = connection.dialect
        self.max_read: int = int(connection.max_read_size)
        self.max_transact: int = int(connection.max_transact_size)
        self._sealer: security.Sealer | None = None
        self._signer: security.Signer | None = None
        if session.encrypt_data or tree.encrypt_data:
            cipher = connection.cipher_id if self.dialect >= SMB_3_1_1 else security.AES_128_CCM
            if cipher not in (
                security.AES_128_CCM,
                security.AES_128_GCM,
                security.AES_256_CCM,
                security.AES_256_GCM,
            ):
                raise NotForFastPath(f"encryption with cipher 0x{cipher or 0:04x}")
            self._sealer = security.Sealer(
                cipher, session.encryption_key, session.decryption_key, self.session_id
            )
        if session.signing_key:
            if self.dialect >= SMB_3_1_1 and connection.signing_algorithm_id is not None:
                algorithm = int(connection.signing_algorithm_id)
            elif self.dialect >= SMB_3_0_0:
                algorithm = security.AES_CMAC
            else:
                algorithm = security.HMAC_SHA256
            if algorithm not in (security.AES_GMAC, security.AES_CMAC, security.HMAC_SHA256):
                raise NotForFastPath(f"signing algorithm 0x{algorithm:04x}")
            self._signer = security.Signer(algorithm, session.signing_key)
        self._sign_requests = bool(
            self._sealer is None and self._signer is not None and session.signing_required
        )
        self._lock = threading.RLock()
        self._answers: dict[int, Answer] = {}
        self._unwanted: set[int] = set()
        self._outstanding: set[int] = set()
        self._sock: socket.socket | None = None
        self._rfile: Any = None
        self._next_id = 0
        self._high = 0
        self.alive = False

    # -- set-up --------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        host: str,
        port: int,
        share: str,
        username: str | None,
        password: str | None,
        timeout: float,
    ) -> Channel:
        """Connect, authenticate and connect the tree with smbprotocol, then take over."""
        from smbclient import ClientConfig
        from smbprotocol.connection import Connection
        from smbprotocol.session import Session
        from smbprotocol.tree import TreeConnect

        # The client's one GUID, as smbclient's own connections use (MS-SMB2 3.2.1.1):
        # Samba serves every connection of one client GUID in one process, so the fast
        # path meets the share modes and locks of the listing connection there.
        connection = Connection(ClientConfig().client_guid, host, port, require_signing=True)
        connection.connect(timeout=timeout)
        try:
            if connection.dialect < SMB_2_1_0 or not connection.supports_multi_credit:
                raise NotForFastPath(f"dialect 0x{connection.dialect:04x} without multi-credit")
            session = Session(
                connection, username=username, password=password, require_encryption=False
            )
            session.connect()
            tree = TreeConnect(session, rf"\\{host}\{share}")
            tree.connect()
            if tree.is_dfs_share:
                raise NotForFastPath("the share is a DFS share")
            channel = cls(connection, session, tree)
            channel._take_over(timeout)
        except BaseException:
            try:
                connection.disconnect(close=False)
            except Exception:  # noqa: BLE001 - the set-up's own failure is what matters
                pass
            raise
        return channel

    def _take_over(self, timeout: float) -> None:
        from smbprotocol.connection import SMB2Echo

        connection = self._connection
        tcp = connection.transport
        worker = connection._t_worker
        connection.transport = _RetiredTransport(tcp)
        # The thread is blocked reading the old transport: the ECHO's answer wakes it, and
        # its next read meets the retired one.
        request = connection.send(SMB2Echo(), sid=self.session_id)
        connection.receive(request, timeout=timeout)
        worker.join(timeout)
        if worker.is_alive():
            raise NotForFastPath("smbprotocol's receive thread did not end")
        with connection.sequence_lock:
            self._next_id = int(connection.sequence_window["low"])
            self._high = int(connection.sequence_window["high"])
        connection.outstanding_requests.clear()
        self._sock = tcp._sock
        assert self._sock is not None
        self._sock.settimeout(RECEIVE_TIMEOUT)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._rfile = self._sock.makefile("rb", buffering=256 * 1024)
        self.alive = True

    def close(self) -> None:
        """Drop the connection (no LOGOFF: the server ends the session with the socket).
        Safe to call twice."""
        with self._lock:
            self.alive = False
            rfile, self._rfile = self._rfile, None
            if rfile is not None:
                try:
                    rfile.close()
                except OSError:
                    pass
            try:
                self._connection.disconnect(close=False)
            except Exception:  # noqa: BLE001 - it may be dead already
                pass
            self._answers.clear()

    def abandon(self) -> None:
        """Forget the connection in a forked child without writing to the parent's socket."""
        self.alive = False
        self._rfile = None
        self._sock = None
        self._answers.clear()

    @property
    def protection(self) -> str:
        """How messages are protected, for the log."""
        if self._sealer is not None:
            return "encrypted"
        if self._sign_requests and self._signer is not None:
            names = {security.AES_GMAC: "AES-GMAC", security.AES_CMAC: "AES-CMAC"}
            return f"signed with {names.get(self._signer.algorithm, 'HMAC-SHA256')}"
        return "neither signed nor encrypted"

    # -- credits -------------------------------------------------------------------------

    @property
    def credits(self) -> int:
        return self._high - self._next_id

    def read_size(self, wanted: int) -> int:
        """The largest read up to ``wanted`` the server allows and the credits cover now."""
        return max(1, min(wanted, self.max_read, max(1, self.credits) * 65536))

    # -- sending -------------------------------------------------------------------------

    def send(self, requests: Sequence[Request], *, related: bool = False) -> list[int]:
        """Send ``requests`` as one compound (``related``: each acts on the file the first
        opened); returns their message ids. Waits for answers while credits are short."""
        return self.send_compounds([requests], related=related)[0]

    def send_compounds(
        self, compounds: Sequence[Sequence[Request]], *, related: bool = False
    ) -> list[list[int]]:
        """Send several compounds with one system call (one wake-up of the server instead
        of one per compound); their message ids, compound by compound."""
        with self._lock:
            self._check_alive()
            needed = sum(r.charge for requests in compounds for r in requests)
            while self.credits < needed:
                if not self._outstanding:
                    raise ConnectionLost(
                        f"the server grants {self.credits} credits, {needed} needed, "
                        "and no answer is due"
                    )
                self._pump()
            all_ids: list[list[int]] = []
            frames: list[bytes] = []
            for requests in compounds:
                ids, data = self._pack(requests, related)
                all_ids.append(ids)
                frames.append(_LENGTH.pack(len(data)))
                frames.append(data)
            try:
                assert self._sock is not None
                self._sock.sendall(b"".join(frames))
            except OSError as exc:
                self._fail(exc)
            for ids in all_ids:
                self._outstanding.update(ids)
            return all_ids

    def _pack(self, requests: Sequence[Request], related: bool) -> tuple[list[int], bytes]:
        """One compound, signed or sealed: its message ids and its bytes."""
        ids: list[int] = []
        parts: list[bytes] = []
        last = len(requests) - 1
        base_flags = wire.FLAG_SIGNED if self._sign_requests else 0
        for i, request in enumerate(requests):
            message_id = self._next_id
            self._next_id += request.charge
            top_up = CREDIT_TOP_UP if self.credits < CREDIT_TARGET else 0
            flags = base_flags | (wire.FLAG_RELATED if related and i else 0)
            size = wire.HEADER_SIZE + len(request.body)
            padding = 0 if i == last else (-size) % 8
            message = bytearray(
                wire.header(
                    request.command,
                    message_id,
                    request.charge,
                    request.charge + top_up,
                    flags,
                    self.tree_id,
                    self.session_id,
                    0 if i == last else size + padding,
                )
            )
            message += request.body
            message += b"\0" * padding
            if self._sign_requests:
                assert self._signer is not None
                self._signer.sign(message, message_id)
            parts.append(bytes(message))
            ids.append(message_id)
        data = b"".join(parts)
        if self._sealer is not None:
            data = self._sealer.seal(data)
        return ids, data

    # -- receiving -----------------------------------------------------------------------

    def wait(self, message_id: int) -> Answer:
        """The final answer to ``message_id`` (reading others' answers meanwhile)."""
        with self._lock:
            while True:
                answer = self._answers.pop(message_id, None)
                if answer is not None:
                    return answer
                self._check_alive()
                if message_id not in self._outstanding:
                    raise KeyError(f"no SMB request {message_id} is outstanding")
                self._pump()

    def close_quietly(self, file_id: bytes) -> None:
        """CLOSE ``file_id`` without waiting for the answer (dropped when it comes): what
        was read with it, or its error, is what matters."""
        if not self.alive:
            return
        try:
            ids = self.send([Request(wire.CLOSE, wire.close_body(file_id))])
        except (OSError, StatusError):
            return
        self.forget(ids)

    def forget(self, ids: Sequence[int]) -> None:
        """The answers to ``ids`` are not wanted: drop them as they come."""
        with self._lock:
            for message_id in ids:
                if self._answers.pop(message_id, None) is None and message_id in self._outstanding:
                    self._unwanted.add(message_id)

    def _check_alive(self) -> None:
        if not self.alive:
            raise ConnectionLost("the SMB connection was closed after an earlier failure")

    def _fail(self, exc: BaseException) -> None:
        self.close()
        raise ConnectionLost(f"SMB connection lost: {type(exc).__name__}: {exc}") from exc

    def _read_frame(self) -> memoryview:
        """One Direct TCP message (MS-SMB2 2.1: a zero byte, a 24-bit length, the data);
        NetBIOS keep-alives (type 0x85, no data) some servers send are skipped. Each frame
        gets a buffer of its own, never reused: READ data is handed on as views of it."""
        rfile = self._rfile
        while True:
            head = rfile.read(4)
            if len(head) < 4:
                raise EOFError("the server closed the connection")
            if head[0] == _KEEP_ALIVE:
                continue
            if head[0] != 0:
                raise security.SignatureMismatch(f"not a Direct TCP frame (type 0x{head[0]:02x})")
            break
        (length,) = _LENGTH.unpack(head)
        frame = bytearray(length)
        view = memoryview(frame)
        got = rfile.readinto(view)
        while got < length:
            more = rfile.readinto(view[got:])
            if not more:
                raise EOFError("the server closed the connection mid-message")
            got += more
        return view

    def _pump(self) -> None:
        """Read one frame and file its answers by message id."""
        try:
            frame = self._read_frame()
            sealed = bytes(frame[:4]) == wire.TRANSFORM_ID
            if sealed:
                if self._sealer is None:
                    raise security.SignatureMismatch("an encrypted answer on a plain session")
                frame = memoryview(self._sealer.open(frame))
            elif self._sealer is not None:
                raise security.SignatureMismatch("a plain answer on an encrypted session")
            self._file_answers(frame, sealed)
        except (OSError, EOFError, ValueError, struct.error, security.SignatureMismatch) as exc:
            self._fail(exc)
        except Exception as exc:  # cryptography's InvalidTag and the like
            self._fail(exc)

    def _file_answers(self, frame: memoryview, sealed: bool) -> None:
        pos = 0
        unpack = wire.RESPONSE_FIELDS.unpack_from
        while True:
            if bytes(frame[pos : pos + 4]) != wire.PROTOCOL_ID:
                raise security.SignatureMismatch("not an SMB2 answer")
            _charge, status, command, granted, flags, next_command, message_id = unpack(
                frame, pos + 6
            )
            end = pos + next_command if next_command else len(frame)
            message = frame[pos:end]
            self._high += granted
            interim = status == wire.STATUS_PENDING and flags & wire.FLAG_ASYNC
            if not interim and message_id != _ANY_MESSAGE:
                if not sealed and self._signer is not None:
                    if flags & wire.FLAG_SIGNED:
                        self._signer.verify(message, message_id)
                    elif self._sign_requests and status not in _UNSIGNABLE:
                        raise security.SignatureMismatch(
                            f"an unsigned answer to SMB message {message_id} on a signed session"
                        )
                self._outstanding.discard(message_id)
                if message_id in self._unwanted:
                    self._unwanted.discard(message_id)
                else:
                    self._answers[message_id] = Answer(status, command, message)
            if not next_command:
                return
            pos = end
