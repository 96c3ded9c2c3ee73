"""How addresses are compared and stored: the bare, lower-cased address, and its keyed hash.

Kept apart from the validation in `rules`: client policies, leases and the store compare addresses
on every function, the webhook among them, which validates no payload (docs/security.md#erasure
for what the hashes are for).
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["address_hash", "bare_address"]


def bare_address(address: str) -> str:
    """`Alias <a@example.com>` -> `a@example.com`, lower-cased: how addresses are compared and stored."""
    return address.rpartition("<")[2].rstrip(">").strip().lower()


def address_hash(key: str | None, address: str) -> str:
    """The normalised address (`bare_address`) as 64 hex digits: HMAC-SHA256 under `key` (the
    `SESMAIL_ERASURE_KEY`), so a table of these cannot be reversed with a dictionary of addresses;
    without a key a plain SHA-256, which can. What an erased address's suppressions are kept under."""
    data = bare_address(address).encode("utf-8", "surrogatepass")
    if key:
        return hmac.new(key.encode("utf-8", "surrogatepass"), data, hashlib.sha256).hexdigest()
    return hashlib.sha256(data).hexdigest()
