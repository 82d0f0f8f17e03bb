"""Keyed hashing (HMAC-SHA256) of identifiers, so no table after `raw_*` holds a raw user id.

A plain SHA-256 of an email can be reversed with a dictionary of emails; an HMAC cannot without the
key. The key comes from the environment and is never written to a table, a log or run config.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import warnings

import pyarrow as pa
import pyarrow.compute as pc

KEY_ENV = "FLYWHEEL_HASH_KEY"
# Only for a laptop demo: hashes made with a published key are as reversible as plain SHA-256.
DEVELOPMENT_KEY = "flywheel-development-key-not-secret"
MIN_KEY_BYTES = 16
_warned: set[str] = set()  # warn once per process, not once per asset


class DevelopmentKeyWarning(UserWarning):
    """The public development key is in use: user hashes are reversible by anyone."""


def load_key(env_var: str = KEY_ENV) -> bytes:
    """The hashing key from the environment; the development key, with a loud warning, if unset."""
    value = os.environ.get(env_var)
    if not value:
        if env_var in _warned:
            return DEVELOPMENT_KEY.encode()
        _warned.add(env_var)
        warnings.warn(
            f"{env_var} is not set: hashing user ids with the PUBLIC development key. Hashes made "
            f"with it are reversible; set {env_var} to a secret of at least {MIN_KEY_BYTES} bytes "
            "before processing real data.",
            DevelopmentKeyWarning,
            stacklevel=2,
        )
        value = DEVELOPMENT_KEY
    key = value.encode()
    if len(key) < MIN_KEY_BYTES:
        raise ValueError(f"{env_var} must be at least {MIN_KEY_BYTES} bytes long")
    return key


def keyed_hash(value: str, key: bytes, purpose: str) -> str:
    """HMAC-SHA256 of one value, separated by `purpose` so hashes for different uses differ."""
    return hmac.new(key, f"{purpose}\x00{value}".encode(), hashlib.sha256).hexdigest()


def hash_column(values: pa.Array | pa.ChunkedArray, key: bytes, purpose: str) -> pa.Array:
    """Hash every non-null value; nulls stay null. Each distinct value is hashed once."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    encoded = pc.dictionary_encode(values)
    hashed = pa.array(
        [keyed_hash(v, key, purpose) for v in encoded.dictionary.to_pylist()], pa.string()
    )
    return pc.take(hashed, encoded.indices)


def unit_interval(value: str, key: bytes, purpose: str) -> float:
    """A keyed, deterministic number in [0, 1) for `value`: a row always falls the same way."""
    digest = hmac.new(key, f"{purpose}\x00{value}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
