"""Buckets, objects and multipart uploads on local disk.

Layout under the data directory::

    .ossd.lock                       flock: one server per data directory
    tmp/                             temp files; emptied at start-up
    buckets/<bucket>/bucket.json     creation date, region, storage class, ACL
    buckets/<bucket>/objects/<hh>/<sha256(key)>     one file per object
    buckets/<bucket>/uploads/<upload-id>/upload.json   key and headers of the upload
    buckets/<bucket>/uploads/<upload-id>/p00001        one file per part

Keys never become paths: an object lives in a file named by the SHA-256 of its key, so any
key OSS accepts (unicode, '%', '?', 1023 bytes, "a" next to "a/b") is just a name. Each
object file is ``data + trailer``: the trailer is the object's metadata as JSON followed by
its length and a magic string. Data and metadata therefore change together, with one
``os.replace`` of a fully written, fsynced temp file: a reader that opened the file sees
one consistent version to the end, and an upload that dies half way never shows.

Each bucket keeps an in-memory index (a sorted key list plus a dict of metadata), rebuilt
from the trailers at start-up and changed under the bucket's lock together with the
``os.replace``. Listing is a bisect into that list: no directory walk, no stat per key.
Python compares ``str`` by code point, which is the UTF-8 byte order OSS lists in.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import shutil
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sharelift.checksum import crc64, crc64_combine
from sharelift.ossd.errors import OssError

MAGIC = b"OSSDOBJ1"
_TAIL = struct.Struct(">Q8s")  # trailer length, magic
MAX_KEY_BYTES = 1023
MAX_PART_NUMBER = 10000
MIN_PART_SIZE = 100 * 1024  # OSS: every part but the last must be at least 100 KB
MAX_OBJECT_SIZE = 5 * 1024**3  # PutObject / UploadPart limit
COPY_CHUNK = 1024 * 1024


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def validate_key(key: str) -> None:
    """OSS object names: 1-1023 UTF-8 bytes, not starting with '/' or '\\'."""
    if not key:
        raise OssError("InvalidObjectName", "Object name must not be empty.")
    try:
        n = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise OssError("InvalidObjectName", "Object name is not valid UTF-8.") from None
    if n > MAX_KEY_BYTES:
        raise OssError("InvalidObjectName", "The length of object name must be 1-1023 bytes.")
    if key[0] in "/\\":
        raise OssError("InvalidObjectName", "Object name must not start with '/' or '\\'.")


def validate_bucket_name(name: str) -> None:
    ok = 3 <= len(name) <= 63 and name[0].isalnum() and name[-1].isalnum()
    ok = ok and all(c.islower() or c.isdigit() or c == "-" for c in name) and name.isascii()
    if not ok:
        raise OssError("InvalidBucketName", BucketName=name)


def successor(prefix: str) -> str | None:
    """The smallest string greater than every string that starts with ``prefix``."""
    last = ord(prefix[-1])
    if last >= 0x10FFFF:
        return None
    return prefix[:-1] + chr(last + 1)


# --------------------------------------------------------------------------------------
# metadata records


@dataclass(slots=True)
class ObjectMeta:
    key: str
    size: int
    etag: str  # upper-case hex without quotes; multipart: "<hex>-<parts>"
    crc64: int
    mtime: float
    content_type: str
    object_type: str = "Normal"
    storage_class: str = "Standard"
    user_meta: dict[str, str] = field(default_factory=dict)  # "x-oss-meta-foo" -> value
    headers: dict[str, str] = field(default_factory=dict)  # Cache-Control & co.
    content_md5: str = ""  # base64, simple puts only

    def to_json(self) -> dict[str, object]:
        return {
            "v": 1,
            "key": self.key,
            "size": self.size,
            "etag": self.etag,
            "crc64": self.crc64,
            "mtime": self.mtime,
            "ctype": self.content_type,
            "type": self.object_type,
            "sc": self.storage_class,
            "meta": self.user_meta,
            "hdr": self.headers,
            "md5": self.content_md5,
        }

    @classmethod
    def from_json(cls, d: dict) -> ObjectMeta:  # type: ignore[type-arg]
        return cls(
            key=d["key"],
            size=int(d["size"]),
            etag=d["etag"],
            crc64=int(d["crc64"]),
            mtime=float(d["mtime"]),
            content_type=d.get("ctype") or "application/octet-stream",
            object_type=d.get("type") or "Normal",
            storage_class=d.get("sc") or "Standard",
            user_meta=dict(d.get("meta") or {}),
            headers=dict(d.get("hdr") or {}),
            content_md5=d.get("md5") or "",
        )


@dataclass(slots=True)
class WriteAttrs:
    """What a client sets on an object besides its bytes (from the request headers)."""

    content_type: str = "application/octet-stream"
    storage_class: str = "Standard"
    user_meta: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        return {
            "ctype": self.content_type,
            "sc": self.storage_class,
            "meta": self.user_meta,
            "hdr": self.headers,
        }

    @classmethod
    def from_json(cls, d: dict) -> WriteAttrs:  # type: ignore[type-arg]
        return cls(
            content_type=d.get("ctype") or "application/octet-stream",
            storage_class=d.get("sc") or "Standard",
            user_meta=dict(d.get("meta") or {}),
            headers=dict(d.get("hdr") or {}),
        )


@dataclass(slots=True)
class PartMeta:
    number: int
    size: int
    etag: str
    crc64: int
    mtime: float

    def to_json(self) -> dict[str, object]:
        return {
            "n": self.number,
            "size": self.size,
            "etag": self.etag,
            "crc64": self.crc64,
            "mtime": self.mtime,
        }

    @classmethod
    def from_json(cls, d: dict) -> PartMeta:  # type: ignore[type-arg]
        return cls(int(d["n"]), int(d["size"]), d["etag"], int(d["crc64"]), float(d["mtime"]))


@dataclass
class Upload:
    upload_id: str
    key: str
    initiated: float
    attrs: WriteAttrs
    path: Path
    parts: dict[int, PartMeta] = field(default_factory=dict)


@dataclass
class Bucket:
    name: str
    path: Path
    created: float
    region: str
    storage_class: str = "Standard"
    acl: str = "private"
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    keys: list[str] = field(default_factory=list, repr=False)
    objects: dict[str, ObjectMeta] = field(default_factory=dict, repr=False)
    uploads: dict[str, Upload] = field(default_factory=dict, repr=False)
    deleted: bool = False
    made_dirs: set[str] = field(default_factory=set, repr=False)
    dir_fds: dict[str, int] = field(default_factory=dict, repr=False)  # objects/<hh> -> fd

    def info_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "created": self.created,
            "region": self.region,
            "sc": self.storage_class,
            "acl": self.acl,
        }

    def object_path(self, key: str) -> Path:
        h = key_hash(key)
        return self.path / "objects" / h[:2] / h

    def sync_dir(self, sub: str) -> None:
        """fsync objects/<sub> (kept open: opening a directory per PUT is not free)."""
        fd = self.dir_fds.get(sub)
        if fd is None:
            fd = os.open(self.path / "objects" / sub, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            with self.lock:
                if sub in self.dir_fds or self.deleted:
                    os.close(fd)
                    fd = self.dir_fds.get(sub)
                else:
                    self.dir_fds[sub] = fd
        if fd is not None:
            with contextlib.suppress(OSError):  # closed by a concurrent bucket delete
                os.fsync(fd)

    def close_dirs(self) -> None:
        with self.lock:
            fds, self.dir_fds = list(self.dir_fds.values()), {}
        for fd in fds:
            os.close(fd)

    def stats(self) -> tuple[int, int, int]:
        with self.lock:
            return len(self.keys), sum(m.size for m in self.objects.values()), len(self.uploads)


# --------------------------------------------------------------------------------------
# files with a metadata trailer


def read_trailer(fd: int) -> tuple[dict, int]:  # type: ignore[type-arg]
    """(trailer JSON, data length) of an object or part file open as ``fd``."""
    size = os.fstat(fd).st_size
    if size < _TAIL.size:
        raise ValueError("file too short for a trailer")
    length, magic = _TAIL.unpack(os.pread(fd, _TAIL.size, size - _TAIL.size))
    if magic != MAGIC or length > size - _TAIL.size:
        raise ValueError("bad trailer")
    start = size - _TAIL.size - length
    return json.loads(os.pread(fd, length, start)), start


class TempFile:
    """A file in the data directory's ``tmp/`` being written; hashes what goes through it."""

    def __init__(self, tmp_dir: Path, fsync: bool, hashing: bool = True) -> None:
        self.path = tmp_dir / uuid.uuid4().hex
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        self._fsync = fsync
        self._md5 = hashlib.md5() if hashing else None
        self.crc = 0
        self.size = 0
        self.closed = False

    def _write_all(self, data: bytes | bytearray | memoryview) -> None:
        mv = memoryview(data)
        while mv:
            n = os.write(self.fd, mv)
            mv = mv[n:]

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Object bytes: counted, MD5-hashed and CRC-64-summed."""
        if self._md5 is not None:
            self._md5.update(data)
        self.crc = crc64(data, self.crc)
        self.size += len(data)
        self._write_all(data)

    def copy_from(self, src_fd: int, offset: int, count: int) -> None:
        """Object bytes from another file, in-kernel when the OS can (no MD5, no CRC)."""
        done = 0
        use_cfr = hasattr(os, "copy_file_range")
        while done < count:
            want = min(count - done, 64 * 1024 * 1024)
            n = 0
            if use_cfr:
                try:
                    n = os.copy_file_range(src_fd, self.fd, want, offset + done)
                except OSError as e:
                    if e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                        raise
                    use_cfr = False
                    continue
            else:
                chunk = os.pread(src_fd, min(want, COPY_CHUNK), offset + done)
                self._write_all(chunk)
                n = len(chunk)
            if n <= 0:
                raise OSError(errno.EIO, "source file is shorter than expected")
            done += n
        self.size += count

    def copy_hashed_from(self, src_fd: int, offset: int, count: int) -> None:
        """Object bytes from another file through MD5 and CRC-64 (UploadPartCopy)."""
        done = 0
        while done < count:
            chunk = os.pread(src_fd, min(count - done, COPY_CHUNK), offset + done)
            if not chunk:
                raise OSError(errno.EIO, "source file is shorter than expected")
            self.write(chunk)
            done += len(chunk)

    @property
    def md5_digest(self) -> bytes:
        assert self._md5 is not None
        return self._md5.digest()

    def finish(self, trailer: dict) -> None:  # type: ignore[type-arg]
        """Append the metadata trailer, fsync and close. The file is then ready to rename."""
        blob = json.dumps(trailer, ensure_ascii=False, separators=(",", ":")).encode()
        self._write_all(blob + _TAIL.pack(len(blob), MAGIC))
        if self._fsync:
            os.fsync(self.fd)
        os.close(self.fd)
        self.closed = True

    def discard(self) -> None:
        if not self.closed:
            os.close(self.fd)
            self.closed = True
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


@dataclass
class OpenObject:
    """An object opened for reading: ``file`` stays valid even if the key is replaced."""

    file: object  # io.FileIO
    fd: int
    meta: ObjectMeta

    def close(self) -> None:
        self.file.close()  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------
# the store


class Store:
    def __init__(self, root: Path, region: str = "cn-hangzhou", fsync: bool = True) -> None:
        self.root = Path(root)
        self.region = region
        self.fsync = fsync
        self.tmp_dir = self.root / "tmp"
        self.buckets_dir = self.root / "buckets"
        self._lock = threading.Lock()
        self._buckets: dict[str, Bucket] = {}
        self._lock_fd: int | None = None

    # ---- life cycle

    def open(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.root / ".ossd.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise RuntimeError(f"data directory {self.root} is in use by another ossd") from None
        shutil.rmtree(self.tmp_dir, ignore_errors=True)
        self.tmp_dir.mkdir()
        self.buckets_dir.mkdir(exist_ok=True)
        for entry in sorted(os.scandir(self.buckets_dir), key=lambda e: e.name):
            if entry.is_dir():
                bucket = self._load_bucket(Path(entry.path))
                if bucket is not None:
                    self._buckets[bucket.name] = bucket

    def close(self) -> None:
        for bucket in list(self._buckets.values()):
            bucket.close_dirs()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _load_bucket(self, path: Path) -> Bucket | None:
        try:
            info = json.loads((path / "bucket.json").read_text())
        except (OSError, ValueError):
            return None
        bucket = Bucket(
            name=info["name"],
            path=path,
            created=float(info["created"]),
            region=info.get("region") or self.region,
            storage_class=info.get("sc") or "Standard",
            acl=info.get("acl") or "private",
        )
        objects_dir = path / "objects"
        if objects_dir.is_dir():
            for sub in os.scandir(objects_dir):
                if not sub.is_dir():
                    continue
                bucket.made_dirs.add(sub.name)
                for f in os.scandir(sub.path):
                    meta = self._load_object_meta(f.path)
                    if meta is not None and key_hash(meta.key) == f.name:
                        bucket.objects[meta.key] = meta
        bucket.keys = sorted(bucket.objects)
        uploads_dir = path / "uploads"
        if uploads_dir.is_dir():
            for u in os.scandir(uploads_dir):
                upload = self._load_upload(Path(u.path))
                if upload is not None:
                    bucket.uploads[upload.upload_id] = upload
        return bucket

    @staticmethod
    def _load_object_meta(path: str) -> ObjectMeta | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            trailer, _ = read_trailer(fd)
            return ObjectMeta.from_json(trailer)
        except (OSError, ValueError, KeyError):
            return None
        finally:
            os.close(fd)

    def _load_upload(self, path: Path) -> Upload | None:
        try:
            info = json.loads((path / "upload.json").read_text())
        except (OSError, ValueError):
            return None
        upload = Upload(
            upload_id=info["id"],
            key=info["key"],
            initiated=float(info["initiated"]),
            attrs=WriteAttrs.from_json(info.get("attrs") or {}),
            path=path,
        )
        for f in os.scandir(path):
            if not f.name.startswith("p"):
                continue
            try:
                fd = os.open(f.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                part = PartMeta.from_json(read_trailer(fd)[0])
                upload.parts[part.number] = part
            except (OSError, ValueError, KeyError):
                pass
            finally:
                os.close(fd)
        return upload

    def _write_json_atomic(self, path: Path, data: dict) -> None:  # type: ignore[type-arg]
        tmp = self.tmp_dir / uuid.uuid4().hex
        with open(tmp, "w") as f:
            json.dump(data, f)
            if self.fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
        if self.fsync:
            _fsync_dir(path.parent)

    def _trash(self, path: Path) -> None:
        """Remove a directory tree: renamed away at once (atomic), deleted afterwards."""
        trash = self.tmp_dir / f"trash-{uuid.uuid4().hex}"
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    def new_temp(self, hashing: bool = True) -> TempFile:
        return TempFile(self.tmp_dir, self.fsync, hashing)

    # ---- buckets

    def list_buckets(self) -> list[Bucket]:
        with self._lock:
            return [self._buckets[n] for n in sorted(self._buckets)]

    def find_bucket(self, name: str) -> Bucket | None:
        bucket = self._buckets.get(name)
        return None if bucket is None or bucket.deleted else bucket

    def get_bucket(self, name: str) -> Bucket:
        bucket = self._buckets.get(name)
        if bucket is None or bucket.deleted:
            validate_bucket_name(name)
            raise OssError("NoSuchBucket", BucketName=name)
        return bucket

    def create_bucket(self, name: str, storage_class: str = "Standard", acl: str = "") -> bool:
        """True if created; False if it existed already (same owner: OSS answers 200)."""
        validate_bucket_name(name)
        with self._lock:
            existing = self._buckets.get(name)
            if existing is not None and not existing.deleted:
                if storage_class and storage_class != existing.storage_class:
                    raise OssError(
                        "BucketAlreadyExists",
                        "Bucket already exists can't modify storage type.",
                        BucketName=name,
                    )
                if acl:
                    existing.acl = acl
                    self._write_json_atomic(existing.path / "bucket.json", existing.info_json())
                return False
            path = self.buckets_dir / name
            if path.exists():  # left over from an interrupted delete
                self._trash(path)
            staging = self.tmp_dir / f"bucket-{uuid.uuid4().hex}"
            (staging / "objects").mkdir(parents=True)
            (staging / "uploads").mkdir()
            bucket = Bucket(
                name=name,
                path=path,
                created=time.time(),
                region=self.region,
                storage_class=storage_class or "Standard",
                acl=acl or "private",
            )
            with open(staging / "bucket.json", "w") as f:
                json.dump(bucket.info_json(), f)
                if self.fsync:
                    f.flush()
                    os.fsync(f.fileno())
            os.rename(staging, path)
            if self.fsync:
                _fsync_dir(self.buckets_dir)
            self._buckets[name] = bucket
            return True

    def set_bucket_acl(self, bucket: Bucket, acl: str) -> None:
        with bucket.lock:
            bucket.acl = acl
            self._write_json_atomic(bucket.path / "bucket.json", bucket.info_json())

    def delete_bucket(self, name: str) -> None:
        with self._lock:
            bucket = self.get_bucket(name)
            with bucket.lock:
                if bucket.keys or bucket.uploads:
                    raise OssError("BucketNotEmpty", BucketName=name)
                bucket.deleted = True
                del self._buckets[name]
        bucket.close_dirs()
        self._trash(bucket.path)
        if self.fsync:
            _fsync_dir(self.buckets_dir)

    # ---- objects

    def head(self, bucket: Bucket, key: str) -> ObjectMeta:
        meta = bucket.objects.get(key)
        if meta is None:
            raise OssError("NoSuchKey", Key=key)
        return meta

    def open_object(self, bucket: Bucket, key: str) -> OpenObject:
        """Open for reading. The metadata comes from the file itself (same version)."""
        path = bucket.object_path(key)
        for _ in range(3):
            try:
                f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by OpenObject
            except FileNotFoundError:
                raise OssError("NoSuchKey", Key=key) from None
            try:
                trailer, _ = read_trailer(f.fileno())
                return OpenObject(f, f.fileno(), ObjectMeta.from_json(trailer))
            except (ValueError, KeyError):
                f.close()
                time.sleep(0.001)
        raise OssError("InternalError", "object file is damaged", Key=key)

    def commit_object(
        self,
        bucket: Bucket,
        temp: TempFile,
        meta: ObjectMeta,
        *,
        forbid_overwrite: bool = False,
        upload: Upload | None = None,
    ) -> None:
        """Make a finished temp file the object ``meta.key`` (last commit wins)."""
        path = bucket.object_path(meta.key)
        sub = path.parent.name
        try:
            temp.finish(meta.to_json())
            with bucket.lock:
                if bucket.deleted:
                    raise OssError("NoSuchBucket", BucketName=bucket.name)
                if upload is not None and bucket.uploads.get(upload.upload_id) is not upload:
                    raise OssError("NoSuchUpload", UploadId=upload.upload_id)
                if forbid_overwrite and meta.key in bucket.objects:
                    raise OssError("FileAlreadyExists", Key=meta.key)
                if sub not in bucket.made_dirs:
                    path.parent.mkdir(exist_ok=True)
                    bucket.made_dirs.add(sub)
                os.replace(temp.path, path)
                if meta.key not in bucket.objects:
                    bisect.insort(bucket.keys, meta.key)
                bucket.objects[meta.key] = meta
                if upload is not None:
                    del bucket.uploads[upload.upload_id]
        except BaseException:
            temp.discard()
            raise
        if upload is not None:
            self._trash(upload.path)
        if self.fsync:
            bucket.sync_dir(sub)

    def delete_object(self, bucket: Bucket, key: str) -> None:
        path = bucket.object_path(key)
        with bucket.lock:
            if bucket.deleted:
                raise OssError("NoSuchBucket", BucketName=bucket.name)
            if key not in bucket.objects:
                return
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
            del bucket.objects[key]
            i = bisect.bisect_left(bucket.keys, key)
            if i < len(bucket.keys) and bucket.keys[i] == key:
                del bucket.keys[i]

    def list_objects(
        self,
        bucket: Bucket,
        prefix: str = "",
        delimiter: str = "",
        after: str = "",
        max_keys: int = 100,
    ) -> tuple[list[ObjectMeta], list[str], bool, str]:
        """(objects, common prefixes, truncated, last item returned) for keys > ``after``."""
        contents: list[ObjectMeta] = []
        prefixes: list[str] = []
        last = ""
        truncated = False
        with bucket.lock:
            keys = bucket.keys
            n = len(keys)
            i = bisect.bisect_right(keys, after) if after else 0
            if prefix and prefix > after:
                i = max(i, bisect.bisect_left(keys, prefix))
            plen = len(prefix)
            while i < n:
                k = keys[i]
                if plen and not k.startswith(prefix):
                    break  # sorted: the keys with the prefix are contiguous
                if delimiter:
                    j = k.find(delimiter, plen)
                    if j >= 0:
                        common = k[: j + len(delimiter)]
                        if common > after:
                            if len(contents) + len(prefixes) >= max_keys:
                                truncated = max_keys > 0
                                break
                            prefixes.append(common)
                            last = common
                        nxt = successor(common)
                        if nxt is None:
                            i += 1
                            while i < n and keys[i].startswith(common):
                                i += 1
                        else:
                            i = bisect.bisect_left(keys, nxt, i + 1)
                        continue
                if len(contents) + len(prefixes) >= max_keys:
                    truncated = max_keys > 0
                    break
                contents.append(bucket.objects[k])
                last = k
                i += 1
        return contents, prefixes, truncated, last

    # ---- multipart

    def create_upload(self, bucket: Bucket, key: str, attrs: WriteAttrs) -> Upload:
        upload_id = uuid.uuid4().hex.upper()
        path = bucket.path / "uploads" / upload_id
        upload = Upload(upload_id, key, time.time(), attrs, path)
        staging = self.tmp_dir / f"upload-{upload_id}"
        staging.mkdir()
        info = {
            "id": upload_id,
            "key": key,
            "initiated": upload.initiated,
            "attrs": attrs.to_json(),
        }
        with open(staging / "upload.json", "w") as f:
            json.dump(info, f)
            if self.fsync:
                f.flush()
                os.fsync(f.fileno())
        with bucket.lock:
            if bucket.deleted:
                shutil.rmtree(staging, ignore_errors=True)
                raise OssError("NoSuchBucket", BucketName=bucket.name)
            os.rename(staging, path)
            bucket.uploads[upload_id] = upload
        if self.fsync:
            _fsync_dir(path.parent)
        return upload

    def get_upload(self, bucket: Bucket, upload_id: str, key: str | None = None) -> Upload:
        upload = bucket.uploads.get(upload_id)
        if upload is None or (key is not None and upload.key != key):
            raise OssError("NoSuchUpload", UploadId=upload_id)
        return upload

    def commit_part(self, bucket: Bucket, upload: Upload, temp: TempFile, part: PartMeta) -> None:
        path = upload.path / f"p{part.number:05d}"
        try:
            temp.finish(part.to_json())
            with bucket.lock:
                if bucket.uploads.get(upload.upload_id) is not upload:
                    raise OssError("NoSuchUpload", UploadId=upload.upload_id)
                os.replace(temp.path, path)
                upload.parts[part.number] = part
        except BaseException:
            temp.discard()
            raise
        if self.fsync:
            _fsync_dir(upload.path)

    def abort_upload(self, bucket: Bucket, upload_id: str, key: str) -> None:
        with bucket.lock:
            upload = self.get_upload(bucket, upload_id, key)
            del bucket.uploads[upload_id]
        self._trash(upload.path)

    def complete_upload(
        self,
        bucket: Bucket,
        upload: Upload,
        wanted: list[tuple[int, str]] | None,
        *,
        forbid_overwrite: bool = False,
    ) -> ObjectMeta:
        """Join the parts (``wanted`` = [(number, etag)], or all parts) into the object."""
        with bucket.lock:
            if bucket.uploads.get(upload.upload_id) is not upload:
                raise OssError("NoSuchUpload", UploadId=upload.upload_id)
            parts = dict(upload.parts)
        if wanted is None:
            wanted = [(n, parts[n].etag) for n in sorted(parts)]
        if not wanted:
            raise OssError("InvalidRequest", "The complete request must contain at least one part.")
        previous = 0
        for number, _etag in wanted:
            if number <= previous:
                raise OssError("InvalidPartOrder", PartNumber=str(number))
            previous = number
        chosen: list[PartMeta] = []
        for number, etag in wanted:
            part = parts.get(number)
            if part is None or etag.strip('"').upper() != part.etag:
                raise OssError("InvalidPart", PartNumber=str(number), ETag=etag)
            chosen.append(part)
        for part in chosen[:-1]:
            if part.size < MIN_PART_SIZE:
                raise OssError(
                    "EntityTooSmall",
                    MinSizeAllowed=str(MIN_PART_SIZE),
                    ProposedSize=str(part.size),
                    PartNumber=str(part.number),
                )
        temp = self.new_temp(hashing=False)
        try:
            crc = 0
            md5s = hashlib.md5()
            for part in chosen:
                path = upload.path / f"p{part.number:05d}"
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                except FileNotFoundError:
                    raise OssError("NoSuchUpload", UploadId=upload.upload_id) from None
                try:
                    trailer, data_len = read_trailer(fd)
                    on_disk = PartMeta.from_json(trailer)
                    if on_disk.etag != part.etag or data_len != part.size:
                        # replaced by a concurrent UploadPart: the ETag no longer matches
                        raise OssError("InvalidPart", PartNumber=str(part.number), ETag=part.etag)
                    temp.copy_from(fd, 0, data_len)
                finally:
                    os.close(fd)
                crc = crc64_combine(crc, part.crc64, part.size)
                md5s.update(bytes.fromhex(part.etag))
            attrs = upload.attrs
            meta = ObjectMeta(
                key=upload.key,
                size=temp.size,
                etag=f"{md5s.hexdigest().upper()}-{len(chosen)}",
                crc64=crc,
                mtime=time.time(),
                content_type=attrs.content_type,
                object_type="Multipart",
                storage_class=attrs.storage_class,
                user_meta=dict(attrs.user_meta),
                headers=dict(attrs.headers),
            )
        except BaseException:
            temp.discard()
            raise
        self.commit_object(bucket, temp, meta, forbid_overwrite=forbid_overwrite, upload=upload)
        return meta

    def iter_uploads(self, bucket: Bucket) -> Iterator[Upload]:
        with bucket.lock:
            uploads = list(bucket.uploads.values())
        uploads.sort(key=lambda u: (u.key, u.initiated, u.upload_id))
        yield from uploads
