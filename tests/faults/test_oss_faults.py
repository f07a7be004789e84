"""Faults between the copy and the bucket, injected by ``FaultProxy`` in front of ossd.

Each test copies one tree (150 small files, two streamed and two multipart files) from a
local folder and then downloads every object and compares it with its source file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.conftest import Copy, Tally, assert_retry_finishes, make_tree, record
from tests.faults.proxy import FaultProxy, Faults


@pytest.fixture
def proxied(oss_server, local_tree, tmp_path: Path, unique_name: str):  # type: ignore[no-untyped-def]
    root, source_address = local_tree
    files = make_tree(root)
    bucket = f"f-{unique_name}"
    oss_server.create_bucket(bucket)
    with FaultProxy(oss_server.port) as proxy:
        copy = Copy(
            tmp_path, root, source_address, proxy.destination_address(oss_server, bucket=bucket)
        )
        yield copy, proxy, oss_server.destination_address(bucket=bucket), files


def copy_through(proxied, faults: Faults, name: str) -> tuple[Tally, dict[str, int]]:  # type: ignore[no-untyped-def]
    copy, proxy, direct, _files = proxied
    proxy.faults = faults
    counts, seconds = copy.run()
    proxy.faults = Faults()
    tally = copy.check(direct, seconds)
    tally.injected = dict(proxy.injected)
    record(name, tally)
    return tally, counts


def assert_all_copied_exactly(tally: Tally, files: dict[str, bytes]) -> None:
    assert (tally.corrupt, tally.missing, tally.leftover_uploads) == (0, 0, 0)
    assert tally.failed == 0, tally.reasons
    assert tally.ok == len(files)


def test_one_request_in_five_answered_5xx_still_copies_every_file(proxied) -> None:  # type: ignore[no-untyped-def]
    tally, _ = copy_through(proxied, Faults(status_rate=0.2, statuses=(500, 503)), "20% 500/503")
    assert tally.injected
    assert_all_copied_exactly(tally, proxied[3])


def test_throttling_answers_429_are_waited_out(proxied) -> None:  # type: ignore[no-untyped-def]
    tally, _ = copy_through(proxied, Faults(status_rate=0.2, statuses=(429,)), "20% 429")
    assert tally.injected
    assert_all_copied_exactly(tally, proxied[3])


def test_one_connection_in_five_reset_after_the_server_answered_still_copies_every_file(
    proxied,  # type: ignore[no-untyped-def]
) -> None:
    """The server did the work but the client never heard: the retry must be harmless."""
    tally, _ = copy_through(proxied, Faults(reset_rate=0.2), "20% resets")
    assert tally.injected["reset"] > 0
    assert_all_copied_exactly(tally, proxied[3])


def test_slow_answers_only_slow_the_copy(proxied) -> None:  # type: ignore[no-untyped-def]
    tally, _ = copy_through(proxied, Faults(delay_rate=0.1, delay=0.3), "10% answers 0.3 s late")
    assert_all_copied_exactly(tally, proxied[3])


def test_without_the_crc_header_bytes_are_proved_by_head_or_read_back(proxied) -> None:  # type: ignore[no-untyped-def]
    tally, _ = copy_through(proxied, Faults(strip_crc=True), "CRC header stripped")
    assert tally.injected["crc header stripped"] > 0
    assert_all_copied_exactly(tally, proxied[3])


def test_bits_flipped_on_the_way_never_leave_a_corrupt_object_even_without_the_crc_header(
    proxied,  # type: ignore[no-untyped-def]
) -> None:
    """A damaged PUT is found by the CRC-64 read back, removed, and the file sent again."""
    tally, _ = copy_through(
        proxied, Faults(strip_crc=True, flip_rate=0.1), "CRC header stripped + 10% bit flips"
    )
    assert tally.injected["flipped bit"] > 0
    assert_all_copied_exactly(tally, proxied[3])


def test_bits_flipped_on_the_way_are_caught_by_the_crc_header(proxied) -> None:  # type: ignore[no-untyped-def]
    tally, _ = copy_through(proxied, Faults(flip_rate=0.1), "10% bit flips")
    assert tally.injected["flipped bit"] > 0
    assert_all_copied_exactly(tally, proxied[3])


def test_a_put_refused_with_403_fails_its_file_at_once_with_the_servers_code_and_message(
    proxied,  # type: ignore[no-untyped-def]
) -> None:
    tally, counts = copy_through(proxied, Faults(forbid_put_rate=0.3), "30% PUTs answered 403")
    assert (tally.corrupt, tally.missing, tally.empty_reasons) == (0, 0, 0)
    assert tally.failed > 0
    assert tally.failed + tally.ok == len(proxied[3])
    for reason in tally.reasons:
        assert "HTTP 403 AccessDenied" in reason
        assert "does not allow you to write here" in reason
    # Not retried: the proxy refused exactly as many PUTs as there are failed files
    # (multipart parts are not object PUTs for the proxy).
    assert tally.injected["403 on PUT"] == tally.failed
    assert tally.leftover_uploads == 0
    assert_retry_finishes(proxied[0], proxied[2], tally)


def test_a_server_that_answers_only_503_fails_each_file_with_status_and_a_reason(
    proxied,  # type: ignore[no-untyped-def]
) -> None:
    """Once the retries are spent the reason says what the server said, never ''."""
    import dataclasses

    from sharelift.storage import RetryPolicy

    copy, proxy, direct, files = proxied
    short = RetryPolicy(first_wait=0.01, max_wait=0.05, request_time=0.2, file_time=0.5)
    copy.transfer = dataclasses.replace(copy.transfer, retry=short)
    tally, _ = copy_through(proxied, Faults(status_rate=1.0, statuses=(503,)), "100% 503")
    assert (tally.ok, tally.corrupt, tally.empty_reasons) == (0, 0, 0)
    assert tally.failed == len(files)
    for reason in tally.reasons:
        assert "HTTP 503" in reason
        assert "no error message in the answer" in reason
    assert tally.leftover_uploads == 0
    assert_retry_finishes(copy, direct, tally)


def test_an_initiate_whose_answer_was_lost_leaves_no_upload_behind(proxied) -> None:  # type: ignore[no-untyped-def]
    """The server began an upload but the client never heard its id: the upload begun
    again is the one completed, and the one nobody knows of is aborted."""
    tally, _ = copy_through(proxied, Faults(reset_initiates=2), "2 initiates reset")
    assert tally.injected == {"reset": 2}
    assert_all_copied_exactly(tally, proxied[3])
