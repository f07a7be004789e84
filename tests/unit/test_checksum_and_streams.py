"""CRC-64 as OSS computes it, and reading exactly the announced number of bytes."""

from __future__ import annotations

import io
import os

import pytest

from sharelift.checksum import Crc64, crc64, crc64_combine
from sharelift.errors import SourceFileChanged, scrub
from sharelift.secret import Secret
from sharelift.storage.base import TransferConfig
from sharelift.storage.streaming import ExactReader


def test_crc64_matches_the_value_oss2_computes() -> None:
    from oss2.utils import Crc64 as Oss2Crc64

    data = os.urandom(100_000)
    reference = Oss2Crc64()
    reference.update(data)
    assert crc64(data) == reference.crc


def test_crc64_of_nothing_is_zero() -> None:
    assert crc64(b"") == 0


def test_crc64_continues_across_chunks_and_combines_parts() -> None:
    a, b = os.urandom(5000), os.urandom(7000)
    running = Crc64()
    running.update(a)
    running.update(b)
    assert running.value == crc64(a + b) == crc64_combine(crc64(a), crc64(b), len(b))


def test_exact_reader_gives_every_byte_and_its_crc() -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)
    reader = ExactReader(io.BytesIO(data), len(data), "f", chunk_size=1024 * 1024)
    out = b"".join(iter(lambda: reader.read(16384), b""))
    assert out == data
    assert reader.finish() == crc64(data)


def test_exact_reader_reports_a_file_that_shrank() -> None:
    reader = ExactReader(io.BytesIO(b"12345"), 10, "f")
    with pytest.raises(SourceFileChanged, match="shrank"):
        reader.read_exact(10)


def test_exact_reader_reports_a_file_that_grew() -> None:
    reader = ExactReader(io.BytesIO(b"1234567890"), 5, "f")
    with pytest.raises(SourceFileChanged, match="grew"):
        reader.read_exact(5)


def test_exact_reader_reports_progress_as_deltas() -> None:
    seen: list[int] = []
    reader = ExactReader(io.BytesIO(b"x" * 2500), 2500, "f", chunk_size=1000, progress=seen.append)
    reader.read_exact(2500)
    assert seen == [1000, 1000, 500]


def test_part_size_grows_to_stay_within_ten_thousand_parts() -> None:
    config = TransferConfig(part_size=1024 * 1024, multipart_threshold=8 * 1024 * 1024)
    assert config.part_size_for(50 * 1024**3) * 10_000 >= 50 * 1024**3


def test_transfer_config_refuses_parts_below_the_oss_minimum() -> None:
    with pytest.raises(ValueError, match="part_size"):
        TransferConfig(part_size=1000)


def test_secret_prints_as_stars_everywhere() -> None:
    secret = Secret("hunter2-is-my-password")
    assert "hunter2" not in repr(secret) + str(secret) + f"{secret}" + repr([secret])


def test_scrub_removes_known_secrets_and_credentials_in_urls() -> None:
    Secret("KnownSecret123")
    text = scrub("failed smb://user:pa55word@host/share with KnownSecret123 and password=abc")
    assert "pa55word" not in text and "KnownSecret123" not in text and "abc" not in text
