"""Errors cross process boundaries intact: a pool worker's error reaches the run."""

from __future__ import annotations

import pickle

import pytest

from sharelift.errors import (
    AddressError,
    ConfigError,
    DestinationError,
    FileError,
    UnsupportedLibraryError,
)


@pytest.mark.parametrize(
    "error",
    [
        AddressError("share", "connection refused"),
        ConfigError("prefix", "must end with '/'"),
        FileError("a/b.txt", "permission denied", transient=True),
        DestinationError("a/b.txt", "HTTP 503"),
        UnsupportedLibraryError("libnfs", "4.0", "5.0", "install libnfs13"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_every_error_survives_pickling_with_its_message_and_fields(error: Exception) -> None:
    back = pickle.loads(pickle.dumps(error))
    assert type(back) is type(error)
    assert str(back) == str(error)
    assert back.__dict__ == error.__dict__
