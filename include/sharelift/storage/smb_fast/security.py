"""Signing and sealing of SMB2 messages with the keys smbprotocol derived for the session.

The algorithms are MS-SMB2's (3.1.4.1 signing, 3.1.4.3 encryption); the primitives are
``cryptography``'s (already a dependency of smbprotocol). Key objects are built once per
session rather than per message.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from typing import cast

from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import aead, algorithms

from sharelift.storage.smb_fast import wire

# smbprotocol.connection.SigningAlgorithms / Ciphers (MS-SMB2 2.2.3.1.7 / 2.2.3.1.2)
HMAC_SHA256 = 0x0000
AES_CMAC = 0x0001
AES_GMAC = 0x0002
AES_128_CCM = 0x0001
AES_128_GCM = 0x0002
AES_256_CCM = 0x0003
AES_256_GCM = 0x0004

_ZERO_SIGNATURE = b"\0" * 16
Buffer = bytes | bytearray | memoryview
# ProtocolId, Signature, Nonce, OriginalMessageSize, Reserved, Flags, SessionId
TRANSFORM = struct.Struct("<4s16s16sIHHQ")


class SignatureMismatch(Exception):
    """An answer's signature is not the session's: not from the server, or altered."""


class Signer:
    """Signs requests and checks answers of one session."""

    def __init__(self, algorithm: int, key: bytes) -> None:
        self.algorithm = algorithm
        self._key = key
        self._gmac = aead.AESGCM(key) if algorithm == AES_GMAC else None
        self._cmac = cmac.CMAC(algorithms.AES(key)) if algorithm == AES_CMAC else None

    def signature(self, message: Buffer, message_id: int, response: bool) -> bytes:
        """The signature of ``message`` (its signature field must be zero)."""
        data = cast(bytes, message)  # every primitive here takes any buffer
        if self._gmac is not None:
            nonce = struct.pack("<QI", message_id, 1 if response else 0)
            return self._gmac.encrypt(nonce, b"", data)
        if self._cmac is not None:
            mac = self._cmac.copy()
            mac.update(data)
            return mac.finalize()
        return hmac.new(self._key, data, hashlib.sha256).digest()[:16]

    def sign(self, message: bytearray, message_id: int) -> None:
        """Sign the request ``message`` in place (the SIGNED flag already set)."""
        message[48:64] = self.signature(message, message_id, False)

    def verify(self, message: memoryview, message_id: int) -> None:
        """Check an answer's signature; ``message`` (writable) gets a zero signature
        field, checked in place rather than copied (a READ answer may be megabytes)."""
        given = bytes(message[48:64])
        message[48:64] = _ZERO_SIGNATURE
        if not hmac.compare_digest(given, self.signature(message, message_id, True)):
            raise SignatureMismatch(
                f"the answer to SMB message {message_id} does not carry the session's signature"
            )


class Sealer:
    """Encrypts requests into, and decrypts answers out of, SMB2 TRANSFORM messages."""

    def __init__(self, cipher: int, encryption_key: bytes, decryption_key: bytes, session_id: int):
        gcm = cipher in (AES_128_GCM, AES_256_GCM)
        kind = aead.AESGCM if gcm else aead.AESCCM
        self._nonce_size = 12 if gcm else 11
        self._out = kind(encryption_key)
        self._in = kind(decryption_key)
        self._session_id = session_id

    def seal(self, message: bytes) -> bytes:
        nonce = os.urandom(self._nonce_size)
        padded_nonce = nonce + b"\0" * (16 - self._nonce_size)
        aad = TRANSFORM.pack(
            wire.TRANSFORM_ID, _ZERO_SIGNATURE, padded_nonce, len(message), 0, 1, self._session_id
        )[20:]
        sealed = self._out.encrypt(nonce, message, aad)
        return wire.TRANSFORM_ID + sealed[-16:] + aad + sealed[:-16]

    def open(self, frame: memoryview) -> bytes:
        _proto, signature, nonce, _size, _reserved, flags, _sid = TRANSFORM.unpack_from(frame)
        if flags != 1:
            raise SignatureMismatch(f"unexpected SMB2 TRANSFORM flags 0x{flags:x}")
        aad = bytes(frame[20:52])
        return self._in.decrypt(
            bytes(nonce[: self._nonce_size]), bytes(frame[52:]) + bytes(signature), aad
        )
