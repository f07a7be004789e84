"""An OSS bucket (or any OSS-compatible server) as a destination, through oss2.

Why oss2 and not the Airflow provider's ``OSSHook``: the hook wraps alibabacloud-oss-v2 for
connection handling, which we reuse for addresses, but the copy path needs streaming puts,
per-part control for resumable multipart and the raw ``x-oss-hash-crc64ecma`` header;
oss2 gives all three with a connection pool we size ourselves.

CRC-64 is computed once, on the fly, by ``ExactReader`` (fastcrc, GIL released; for large
files on the read-ahead thread, so the put thread only combines); oss2's
own CRC (crcmod, much slower) is switched off with ``enable_crc=False`` and we compare our
value with the server's ``x-oss-hash-crc64ecma`` ourselves, per part and per object.

Faults: every request goes through ``retrying.call`` (one policy for every backend); which
failures pass is decided by ``transient`` below: no answer (refused, reset, timed out),
HTTP 5xx, 429 and RequestTimeout. A put that streams from the source cannot be sent
again by itself: it fails as a transient ``DestinationError`` and ``sharelift.transfer``
reads the file again. Anything else (403 AccessDenied, NoSuchBucket, InvalidObjectName...)
fails the file at once with the server's status, code and message.

Proof of bytes: a put counts only when the server's CRC-64 of the stored object equals ours.
The ``x-oss-hash-crc64ecma`` header of the put (or complete) answer gives it; where it is
missing (an OSS-compatible server, a proxy that drops it) a HEAD is asked, and where that
has none either, the object is read back and summed. An ETag proves nothing (it is not a
checksum of the bytes for multipart objects, nor on every compatible server).

Resumable multipart: each part's number, ETag and CRC-64 are appended to the upload's
checkpoint (``sharelift.storage.checkpoint``, in ``TransferConfig.checkpoint_dir``) as soon
as the part is stored. A later put of the same key with the same size and source mtime
re-reads the source (it must, to compute the CRC of the whole object), but uploads only the
parts the server does not already hold with the same CRC.

Leftovers: a process that is killed keeps its upload and checkpoint (the next run resumes
them). A file that finally fails has them removed by ``abandon``; what is left anyway (a
server that was down when the abort was sent) is listed by ``incomplete_uploads`` and
removed by ``abort_upload`` (``sharelift cleanup``).
"""

from __future__ import annotations

import builtins
import contextlib
import dataclasses
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, BinaryIO, TypeVar

import oss2
import oss2.exceptions as oss_exc
from oss2.models import PartInfo

import sharelift.storage.buffers as buffers
import sharelift.storage.retrying as retrying
from sharelift.addresses import DestinationAddress
from sharelift.checksum import Crc64, crc64_combine
from sharelift.errors import (
    AddressError,
    ChecksumMismatch,
    DestinationError,
    FileError,
    SourceFileChanged,
    scrub,
)
from sharelift.storage.base import (
    Destination,
    IncompleteUpload,
    ObjectInfo,
    ProgressCallback,
    PutResult,
    ReadStream,
    TransferConfig,
)
from sharelift.storage.checkpoint import CheckpointFile, PartRecord, UploadHeader
from sharelift.storage.streaming import ExactReader

# oss2 logs every request at DEBUG and every error answer (each HEAD of a missing object:
# the normal case on a first run) at INFO, headers included. In an Airflow task each line
# travels to the task log: thousands of lines per subtask, a real CPU cost, and noise that
# hides the per-file reasons we record ourselves. Errors reach us as exceptions anyway.
log = logging.getLogger(__name__)
if logging.getLogger("oss2").level == logging.NOTSET:
    logging.getLogger("oss2").setLevel(logging.WARNING)

T = TypeVar("T")

META_MTIME = "x-oss-meta-sharelift-mtime-ns"
META_MODE = "x-oss-meta-sharelift-mode"
SMALL_OBJECT = 1024 * 1024  # read whole and send as bytes: no stream adapter overhead
CRC_HEADER = "x-oss-hash-crc64ecma"
# Seconds an upload's initiation date may precede our first initiate (server and client
# clocks differ) and still be taken for one of ours.
ORPHAN_CLOCK_SLACK = 60
# Codes that name a passing state of the server, whatever the status that carries them.
TRANSIENT_CODES = frozenset(
    {"RequestTimeout", "InternalError", "ServiceUnavailable", "SlowDown", "Throttling"}
)


def transient(exc: BaseException) -> bool:
    """Whether an oss2 failure may pass if the request is sent again."""
    if not isinstance(exc, oss_exc.OssError):
        return False
    if isinstance(exc, oss_exc.RequestError) or exc.status == oss_exc.OSS_REQUEST_ERROR_STATUS:
        return True  # no answer: refused, reset, timed out, cut short
    return exc.status >= 500 or exc.status == 429 or exc.code in TRANSIENT_CODES


class _Part:
    """One part's bytes as the chunks they were read in: an HTTP body of known length that
    requests sends chunk after chunk, with no copy of the part into one buffer, and that a
    retry iterates again. Its CRC-64 is summed on first use (on the upload's thread) unless
    the source's read-ahead thread already summed the chunks."""

    __slots__ = ("crc", "pieces", "size")

    def __init__(self, pieces: list[bytes], crc: int | None) -> None:
        self.pieces = pieces
        self.crc = crc
        self.size = sum(len(p) for p in pieces)

    def checksum(self) -> int:
        if self.crc is None:
            running = Crc64()
            for piece in self.pieces:
                running.update(piece)
            self.crc = running.value
        return self.crc

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.pieces)


class OssDestination(Destination):
    scheme = "oss"

    def __init__(
        self,
        address: DestinationAddress,
        transfer: TransferConfig | None = None,
        *,
        read_chunk_size: int = 1024 * 1024,
        connect_timeout: float = 10.0,
    ) -> None:
        self.address = address
        self.transfer = transfer or TransferConfig()
        self.prefix = address.prefix
        self.read_chunk_size = read_chunk_size
        # Before the copy threads start: their parts stay bounded in resident memory too.
        buffers.limit_malloc_arenas()
        self.connect_timeout = connect_timeout
        secret = address.access_key_secret.reveal()
        if address.signature_version == "v1":
            auth: Any = oss2.Auth(address.access_key_id, secret)
        else:
            auth = oss2.AuthV4(address.access_key_id, secret)
        endpoint = address.endpoint if "://" in address.endpoint else f"https://{address.endpoint}"
        host = endpoint.split("://", 1)[1].split("/", 1)[0].split(":", 1)[0]
        # oss2 picks path style for IP endpoints itself; other non-Alibaba hosts (localhost,
        # a gateway name) do not resolve bucket sub-domains, so use path style there too.
        path_style = not host.endswith(".aliyuncs.com")
        # Room for parallel parts and for the verify step's HEAD threads on one client.
        session = oss2.Session(pool_size=max(self.transfer.max_parallel_parts + 4, 24))
        self._bucket = oss2.Bucket(
            auth,
            endpoint,
            address.bucket,
            session=session,
            connect_timeout=connect_timeout,
            enable_crc=False,
            region=address.region or None,
            is_path_style=path_style,
        )

    def __repr__(self) -> str:
        return f"OssDestination({self.address.name!r}, {self.display_url()!r})"

    def _key(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def display_url(self, key: str = "") -> str:
        return f"oss://{self.address.bucket}/{self.prefix}{key}"

    def object_name(self, key: str) -> str:
        return self._key(key)

    def at_root(self) -> OssDestination:
        return OssDestination(
            dataclasses.replace(self.address, prefix=""),
            self.transfer,
            read_chunk_size=self.read_chunk_size,
            connect_timeout=self.connect_timeout,
        )

    # -- address check -------------------------------------------------------------

    def check(self) -> None:
        try:
            self._bucket.get_bucket_info()
        except oss_exc.OssError as exc:
            raise AddressError(self.address.name, _address_cause(exc, self.address)) from None

    # -- objects -------------------------------------------------------------------

    def _request(self, key: str, what: str, fn: Callable[[], T]) -> T:
        """``fn`` (one request about ``key``) with the retry policy; a failure that stays
        becomes a ``DestinationError`` with the server's status, code and message."""
        try:
            return retrying.call(fn, transient=transient, what=f"{what} {key!r}")
        except FileError:
            raise
        except oss_exc.OssError as exc:
            raise DestinationError(key, _object_cause(exc), transient=transient(exc)) from None

    def head(self, key: str) -> ObjectInfo | None:
        def head_or_none() -> Any:
            try:
                return self._bucket.head_object(self._key(key))
            except oss_exc.NotFound:
                return None

        result = self._request(key, "HEAD", head_or_none)
        if result is None:
            return None
        return _object_info(key, result.headers, result.content_length)

    def put(
        self,
        key: str,
        stream: BinaryIO | ReadStream,
        size: int,
        *,
        source_mtime_ns: int | None = None,
        mode: int | None = None,
        progress: ProgressCallback | None = None,
    ) -> PutResult:
        headers = {}
        if source_mtime_ns is not None:
            headers[META_MTIME] = str(source_mtime_ns)
        if mode is not None:
            headers[META_MODE] = str(mode)
        if size >= self.transfer.multipart_threshold:
            return self._put_multipart(key, stream, size, headers, source_mtime_ns, progress)
        reader = ExactReader(stream, size, key, chunk_size=self.read_chunk_size, progress=progress)
        full_key = self._key(key)
        if size <= SMALL_OBJECT:
            # In memory: the request itself can be sent again.
            data = reader.read_exact(size)
            crc = reader.finish()
            result = self._request(
                key, "PUT", lambda: self._bucket.put_object(full_key, data, headers=headers)
            )
        else:
            # Streamed from the source: a second try needs the file read again (transfer).
            try:
                result = self._bucket.put_object(full_key, reader, headers=headers)
            except FileError:
                raise
            except oss_exc.OssError as exc:
                raise DestinationError(key, _object_cause(exc), transient=transient(exc)) from None
            crc = reader.finish()
        self._prove_crc(key, crc, size, result.headers.get(CRC_HEADER))
        return PutResult(key=key, size=size, crc64=crc, etag=normal_etag(result.etag))

    def reads_ahead(self, size: int) -> bool:
        return size >= self.transfer.multipart_threshold

    def _prove_crc(self, key: str, ours: int, size: int, theirs: str | None) -> None:
        """Raise unless the stored object's CRC-64 is shown equal to ``ours``: from the
        answer's header, else a HEAD's, else by reading the object back."""
        how = "the put's answer"
        if theirs is None:
            info = self.head(key)
            if info is None:
                raise DestinationError(
                    key, "the object is missing right after it was stored", transient=True
                )
            how = "a HEAD after the put"
            if info.crc64 is not None:
                theirs = str(info.crc64)
            elif info.size != size:
                theirs = f"(an object of {info.size} bytes, not {size})"
            else:
                how = "reading the object back"
                theirs = str(self._read_back_crc(key))
        if theirs.isdigit() and int(theirs) == ours:
            return
        # The stored bytes are not the ones we read: remove them rather than leave a
        # corrupt object that looks complete. Bytes damaged on the way may arrive intact
        # next time: the mismatch is transient (the file is copied again).
        with contextlib.suppress(FileError):
            self.delete(key)
        raise ChecksumMismatch(
            key,
            f"CRC-64 mismatch ({how}): sent {ours}, destination stored {theirs}; "
            "the object was removed",
            transient=True,
        )

    def _read_back_crc(self, key: str) -> int:
        def read() -> int:
            crc = Crc64()
            body = self._bucket.get_object(self._key(key))
            while chunk := body.read(self.read_chunk_size):
                crc.update(chunk)
            return crc.value

        return self._request(key, "read-back", read)

    # -- multipart -----------------------------------------------------------------

    def _checkpoint(self, key: str) -> CheckpointFile | None:
        if not self.transfer.checkpoint_dir:
            return None
        ident = f"{self.address.endpoint}\0{self.address.bucket}\0{self._key(key)}"
        name = hashlib.sha256(ident.encode()).hexdigest()[:32] + ".json"
        return CheckpointFile(os.path.join(self.transfer.checkpoint_dir, name))

    def _resume_point(
        self, checkpoint: CheckpointFile | None, header: UploadHeader
    ) -> tuple[str | None, dict[int, PartRecord]]:
        """The upload to go on with and its parts the server holds as recorded; ``(None,
        {})`` when there is none (an upload for other bytes of the key is aborted)."""
        cp = checkpoint.read() if checkpoint is not None else None
        if cp is None:
            return None, {}
        recorded = cp.header
        if (recorded.key, recorded.size, recorded.mtime_ns, recorded.part_size) != (
            header.key,
            header.size,
            header.mtime_ns,
            header.part_size,
        ):
            self._abort_quietly(recorded.key, recorded.upload_id)
            return None, {}
        try:
            listed = {
                p.part_number: p
                for p in oss2.PartIterator(self._bucket, header.key, recorded.upload_id)
            }
        except oss_exc.OssError:  # NoSuchUpload (aborted, completed) or unreachable
            return None, {}
        done = {}
        for num, part in cp.parts.items():
            server = listed.get(num)
            if server is not None and server.etag == part.etag and server.size == part.size:
                done[num] = part
        return recorded.upload_id, done

    def _initiate(self, key: str, full_key: str, headers: dict[str, str]) -> str:
        """A new multipart upload's id. An initiate whose answer was lost (a reset after
        the server acted) and was sent again leaves an upload nobody knows the id of: the
        uploads of this name begun since the first try, other than ours, are aborted."""
        tries = 0
        started = time.time()

        def initiate() -> Any:
            nonlocal tries
            tries += 1
            return self._bucket.init_multipart_upload(full_key, headers=headers)

        upload_id: str = self._request(key, "initiate multipart upload", initiate).upload_id
        if tries > 1:
            try:
                for upload in oss2.MultipartUploadIterator(self._bucket, prefix=full_key):
                    recent = int(upload.initiation_date or 0) >= started - ORPHAN_CLOCK_SLACK
                    if upload.key == full_key and upload.upload_id != upload_id and recent:
                        self._abort_quietly(full_key, upload.upload_id)
            except oss_exc.OssError as exc:  # the upload itself goes on; cleanup finds them
                log.debug("could not list the uploads of %s: %s", key, exc)
        return upload_id

    def _abort_quietly(self, full_key: str, upload_id: str | None) -> None:
        if not upload_id:
            return
        try:
            self._bucket.abort_multipart_upload(full_key, upload_id)
        except oss_exc.OssError:
            pass

    def _put_multipart(
        self,
        key: str,
        stream: BinaryIO | ReadStream,
        size: int,
        headers: dict[str, str],
        mtime: int | None,
        progress: ProgressCallback | None,
    ) -> PutResult:
        part_size = self.transfer.part_size_for(size)
        full_key = self._key(key)
        checkpoint = self._checkpoint(key)
        header = UploadHeader(full_key, size, mtime, part_size, "")
        upload_id, done = self._resume_point(checkpoint, header)
        if upload_id is None:
            upload_id = self._initiate(key, full_key, headers)
        if checkpoint is not None:
            # Fresh, or the resumed upload's parts as the server confirmed them: written
            # once per put; each part stored from here on appends one line.
            checkpoint.start(dataclasses.replace(header, upload_id=upload_id), done)

        reader = ExactReader(
            stream, size, key, chunk_size=self.read_chunk_size, progress=progress, track_crc=False
        )
        lock = threading.Lock()
        part_crcs: dict[int, tuple[int, int]] = {}
        resumed = 0
        slots = threading.Semaphore(self.transfer.max_parallel_parts)

        def upload(num: int, part: _Part, held: int) -> None:
            try:
                crc = part.checksum()  # on this thread, off the one that reads the source
                with lock:
                    part_crcs[num] = (crc, len(part))
                res = self._request(
                    key,
                    f"upload of part {num} of",
                    lambda: self._bucket.upload_part(full_key, upload_id, num, part),
                )
                server_crc = res.headers.get(CRC_HEADER)
                if server_crc is not None and int(server_crc) != crc:
                    raise ChecksumMismatch(
                        key,
                        f"CRC-64 mismatch on part {num}: sent {crc}, destination stored "
                        f"{server_crc}",
                        transient=True,
                    )
                record = PartRecord(etag=res.etag, size=len(part), crc=crc)
                with lock:
                    done[num] = record
                    if checkpoint is not None:
                        checkpoint.record(num, record)
            finally:
                part.pieces = []
                buffers.PARTS.give(held)
                slots.release()

        futures: list[Future[None]] = []
        try:
            with ThreadPoolExecutor(
                self.transfer.max_parallel_parts, thread_name_prefix="sharelift-part"
            ) as pool:
                try:
                    num = 0
                    while reader.consumed < size:
                        num += 1
                        # The process's budget of part bytes bounds memory across every
                        # file in flight; ``slots`` bounds this file's parts in flight.
                        held = buffers.PARTS.take(min(part_size, size - reader.consumed))
                        try:
                            part = _Part(*reader.read_pieces(part_size))
                            prior = done.get(num)
                            if prior and prior.size == len(part) and prior.crc == part.checksum():
                                part_crcs[num] = (prior.crc, prior.size)
                                resumed += len(part)
                                buffers.PARTS.give(held)
                                continue
                            slots.acquire()
                        except BaseException:
                            buffers.PARTS.give(held)
                            raise
                        failed = [f for f in futures if f.done() and f.exception()]
                        if failed:
                            buffers.PARTS.give(held)
                            slots.release()
                            failed[0].result()
                        futures.append(pool.submit(retrying.in_scope(upload), num, part, held))
                        # Held by the upload alone from here: its bytes go when it ends, not
                        # when this loop has read the next part.
                        del part
                    reader.finish()
                finally:
                    wait(futures)
            for f in futures:
                f.result()
            total_crc = 0
            for n in sorted(part_crcs):
                c, length = part_crcs[n]
                total_crc = crc64_combine(total_crc, c, length)
            parts = [PartInfo(n, done[n].etag) for n in sorted(part_crcs)]
            completed = self._complete(key, full_key, upload_id, parts)
        except BaseException as exc:
            # Keep the upload for a resume only when the source is unchanged and a
            # checkpoint exists; otherwise nobody could resume it, so abort it.
            if checkpoint is None or isinstance(exc, (SourceFileChanged, ChecksumMismatch)):
                self._abort_quietly(full_key, upload_id)
                if checkpoint is not None:
                    checkpoint.remove()
            if isinstance(exc, oss_exc.OssError):
                raise DestinationError(key, _object_cause(exc), transient=transient(exc)) from None
            raise
        if checkpoint is not None:
            checkpoint.remove()
        crc_header = completed.headers.get(CRC_HEADER) if completed is not None else None
        self._prove_crc(key, total_crc, size, crc_header)
        return PutResult(
            key=key,
            size=size,
            crc64=total_crc,
            multipart=True,
            resumed_bytes=resumed,
            etag=normal_etag(completed.etag) if completed is not None else None,
        )

    def _complete(self, key: str, full_key: str, upload_id: str, parts: list[PartInfo]) -> Any:
        """Complete the upload; ``None`` when a retry finds it already completed (the first
        answer was lost): the caller's proof then asks the object itself."""
        tries = 0

        def complete() -> Any:
            nonlocal tries
            tries += 1
            try:
                return self._bucket.complete_multipart_upload(full_key, upload_id, parts)
            except oss_exc.NoSuchUpload:
                if tries > 1:
                    return None
                raise

        return self._request(key, "complete multipart upload", complete)

    # -- reading, listing, deleting ----------------------------------------------

    def open(self, key: str) -> ReadStream:
        try:
            return self._bucket.get_object(self._key(key))  # type: ignore[no-any-return]
        except oss_exc.NoSuchKey:
            raise FileNotFoundError(key) from None
        except oss_exc.OssError as exc:
            raise DestinationError(key, _object_cause(exc)) from None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        cut = len(self.prefix)
        try:
            for obj in oss2.ObjectIteratorV2(self._bucket, prefix=self._key(prefix), max_keys=1000):
                yield ObjectInfo(
                    key=obj.key[cut:],
                    size=obj.size,
                    last_modified_ns=int(obj.last_modified) * 1_000_000_000,
                )
        except oss_exc.OssError as exc:
            raise DestinationError(prefix or "/", _object_cause(exc)) from None

    def listed(self, keys: Sequence[str]) -> dict[str, ObjectInfo] | None:
        """One listing per folder, bounded to the range of names asked for.

        Keys of a subtask come in runs of one folder; listing that folder with delimiter
        '/' from just before the first name to the last name asked for costs about one
        request per 1,000 names instead of one HEAD per name.
        """
        by_folder: dict[str, builtins.list[str]] = {}
        for key in keys:
            folder = key.rsplit("/", 1)[0] + "/" if "/" in key else ""
            by_folder.setdefault(folder, []).append(key)
        wanted = set(keys)
        found: dict[str, ObjectInfo] = {}
        cut = len(self.prefix)
        try:
            for folder, names in by_folder.items():
                lo, hi = self._key(min(names)), self._key(max(names))
                # A proper prefix of the first name sorts before it: start just below it.
                start_after = lo[:-1] if len(lo) > len(self._key(folder)) else ""
                for obj in oss2.ObjectIteratorV2(
                    self._bucket,
                    prefix=self._key(folder),
                    delimiter="/",
                    start_after=start_after,
                    max_keys=1000,
                ):
                    if obj.is_prefix():
                        continue
                    if obj.key > hi:
                        break
                    key = obj.key[cut:]
                    if key in wanted:
                        found[key] = ObjectInfo(
                            key=key,
                            size=obj.size,
                            last_modified_ns=int(obj.last_modified) * 1_000_000_000,
                            etag=normal_etag(obj.etag),
                        )
        except oss_exc.OssError:
            return None  # fall back to a HEAD per key
        return found

    def delete(self, key: str) -> None:
        def delete_if_there() -> None:
            with contextlib.suppress(oss_exc.NoSuchKey):
                self._bucket.delete_object(self._key(key))

        self._request(key, "DELETE", delete_if_there)

    def list_multipart_uploads(self) -> builtins.list[tuple[str, str]]:
        """(key, upload id) of unfinished multipart uploads under the prefix (tests)."""
        return [(u.key, u.upload_id) for u in self.incomplete_uploads()]

    # -- leftovers -------------------------------------------------------------------

    def incomplete_uploads(self) -> Iterator[IncompleteUpload]:
        cut = len(self.prefix)
        try:
            for u in oss2.MultipartUploadIterator(self._bucket, prefix=self.prefix):
                yield IncompleteUpload(
                    key=u.key[cut:],
                    upload_id=u.upload_id,
                    initiated_ns=int(u.initiation_date) * 1_000_000_000
                    if u.initiation_date
                    else None,
                )
        except oss_exc.OssError as exc:
            raise DestinationError(self.prefix or "/", _object_cause(exc)) from None

    def abort_upload(self, upload: IncompleteUpload) -> None:
        def abort() -> None:
            with contextlib.suppress(oss_exc.NoSuchUpload):
                self._bucket.abort_multipart_upload(self._key(upload.key), upload.upload_id)

        self._request(upload.key, "abort of multipart upload", abort)

    def abandon(self, key: str) -> None:
        checkpoint = self._checkpoint(key)
        cp = checkpoint.read() if checkpoint is not None else None
        if checkpoint is None or cp is None:
            return
        if cp.header.key == self._key(key):
            self.abort_upload(IncompleteUpload(key, cp.header.upload_id))
        checkpoint.remove()

    def close(self) -> None:
        try:
            self._bucket.session.session.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass


def normal_etag(etag: str | None) -> str | None:
    """ETags compare without their quotes and case (HEAD, list and put spell them apart)."""
    return etag.strip('"').upper() if etag else None


def _object_info(key: str, headers: Any, size: int) -> ObjectInfo:
    def _int(name: str) -> int | None:
        value = headers.get(name)
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None

    return ObjectInfo(
        key=key,
        size=int(size),
        crc64=_int("x-oss-hash-crc64ecma"),
        source_mtime_ns=_int(META_MTIME),
        mode=_int(META_MODE),
        metadata={k.lower(): v for k, v in headers.items() if k.lower().startswith("x-oss-meta-")},
        etag=normal_etag(headers.get("ETag")),
        stored_at_ns=_http_date_ns(headers.get("Last-Modified")),
    )


def _http_date_ns(value: str | None) -> int | None:
    """An HTTP date (whole seconds) in nanoseconds; None when absent or unreadable."""
    from email.utils import parsedate_to_datetime

    if not value:
        return None
    try:
        return int(parsedate_to_datetime(value).timestamp()) * 1_000_000_000
    except (TypeError, ValueError):
        return None


def _address_cause(exc: oss_exc.OssError, address: DestinationAddress) -> str:
    code = getattr(exc, "code", "") or ""
    if isinstance(exc, oss_exc.RequestError) or exc.status == oss_exc.OSS_REQUEST_ERROR_STATUS:
        return f"cannot reach endpoint {address.endpoint}: {_request_error_text(exc)}"
    if code == "NoSuchBucket":
        return f"bucket {address.bucket!r} does not exist"
    if code == "InvalidAccessKeyId":
        return f"AccessKeyId {address.access_key_id!r} is not known to the server"
    if code == "SignatureDoesNotMatch":
        return "wrong AccessKeySecret (the server refused the request signature)"
    if code == "AccessDenied":
        return (
            f"access denied to bucket {address.bucket!r} for AccessKeyId {address.access_key_id!r}"
        )
    return scrub(f"{code or 'error'} (HTTP {exc.status}): {getattr(exc, 'message', '')}")


def _object_cause(exc: oss_exc.OssError) -> str:
    """Never empty: the status, the server's code and message, or what is known instead."""
    if isinstance(exc, oss_exc.RequestError) or exc.status == oss_exc.OSS_REQUEST_ERROR_STATUS:
        return f"destination unreachable: {_request_error_text(exc)}"
    code = exc.code or "no error code"
    message = exc.message or _body_text(exc) or "no error message in the answer"
    request_id = f" (request {exc.request_id})" if exc.request_id else ""
    if exc.status < 0:  # oss2's own failure: malformed answer, client-side check
        return scrub(f"{type(exc).__name__}: {message}{request_id}")
    return scrub(f"HTTP {exc.status} {code}: {message}{request_id}")


def _body_text(exc: oss_exc.OssError) -> str:
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    return " ".join(str(body or "").split())[:200]


def _request_error_text(exc: oss_exc.OssError) -> str:
    text = str(getattr(exc, "exception", "") or exc)
    lowered = text.lower()
    if "reset" in lowered or "aborted" in lowered:
        return "connection reset"
    if "refused" in lowered:
        return "connection refused"
    if "timed out" in lowered or "timeout" in lowered:
        return "connection timed out"
    if "name or service not known" in lowered or "nodename nor servname" in lowered:
        return "host name not found"
    return scrub(text[:200])
