"""One attempt at a time per sender and recipient, so that a doubt is never answered with another
request's mail (docs/reliability.md#leases).

When SES's reply to a SendEmail is lost, the only way to learn what happened is its status index
(GetSendEmailStatus): rows by recipient and date, with the sender and the second SES took the
request, but no subject and nothing of ours. Two attempts from one sender to one recipient whose
time windows overlap cannot be told apart there once both are in doubt. So an attempt takes a
lease on each (sender, To address) before it calls SES, all or nothing, and gives it back the
moment its answer is recorded (sends one after another never wait). An attempt whose outcome is
unknown keeps its leases until its window plus the clock-skew margin has passed; an attempt that
died keeps them until its time limit has. Another attempt waits a few seconds at most, then
answers 503 `ResourceInUse.OutcomeInDoubt` without calling SES.

The lease keys are keyed hashes (`addresses.address_hash`): the table holds no address.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from .errors import OutcomeUnknown, RecipientBusy, StoreUnavailable

if TYPE_CHECKING:
    from .deadline import Deadline
    from .idempotency import Claim
    from .store import LeaseStore

__all__ = ["CLOCK_SKEW_S", "MARGIN_S", "WAIT_S", "Lease", "acquire", "keys_for", "owner_for"]

# SES's RequestTime is whole seconds on Tencent's clock, which may differ from ours by this much.
CLOCK_SKEW_S = 2
# Two windows [start - skew, end + 1 + skew] are disjoint once the second starts this long after
# the first ended (the 1 s is RequestTime's rounding down).
MARGIN_S = 2 * CLOCK_SKEW_S + 2
# The most a held-back attempt waits for the attempt in its way.
WAIT_S = 5.0
_POLL_FIRST_S, _POLL_MAX_S = 0.05, 0.5


def keys_for(secret: str | None, kind: str, sender: str, addresses: list[str]) -> list[str]:
    """Lease keys for (sender, address) pairs: BLAKE2b keyed with the erasure key (so the table
    cannot be reversed with a dictionary of addresses; an empty key without one). `kind` separates
    what the key guards ("send" for a recipient, "list" for a recipient list and subject)."""
    key = _mac_key(secret)
    return sorted({hashlib.blake2b(f"{kind}\n{sender.lower()}\n{address.lower()}".encode("utf-8", "surrogatepass"),
                                   key=key, digest_size=32).hexdigest() for address in addresses})


@functools.lru_cache(maxsize=4)
def _mac_key(secret: str | None) -> bytes:
    # BLAKE2b takes keys of up to 64 bytes: a longer secret is hashed down to 32.
    raw = (secret or "").encode("utf-8", "surrogatepass")
    return raw if len(raw) <= 64 else hashlib.sha256(raw).digest()


def owner_for(ref: str | None) -> str:
    """An attempt's owner name: its Idempotency-Key reference (a repeat of the key may take its own
    leases again), or a name of its own."""
    return ref if ref else "once:" + os.urandom(12).hex()


class Lease:
    """Leases held by one attempt; `window_start` is when its matching window starts."""

    def __init__(self, store: LeaseStore, keys: list[str], owner: str, window_start: float, restarted: bool) -> None:
        self.store, self.keys, self.owner = store, keys, owner
        self.window_start = window_start
        # The window had to start later than the caller said (a lease in the way expired in between):
        # an attempt with a stored record must move its start there before calling SES.
        self.restarted = restarted
        self.suppressed: dict[str, dict] = {}  # what acquire(suppression=…) found
        self.guard: dict[str, dict] | None = None  # the reputation guard's window, when asked (sesmail.guard)

    @property
    def release_with(self) -> tuple[list[str], str, float]:
        """For store.record_sent(release=…): given back in the statement that records the answer."""
        return self.keys, self.owner, self.window_start

    def release(self) -> None:
        """A definite answer without a mail (SES refused, or we stopped before calling it)."""
        try:
            self.store.release_leases(self.keys, self.owner, self.window_start)
        except StoreUnavailable:
            pass  # it expires by itself; until then it only makes others wait

    @contextlib.contextmanager
    def calling(self, claim: Claim | None = None) -> Iterator[Lease]:
        """Around the SES call: first moves a stored attempt's window start where the leases say it
        begins; then an unknown outcome puts the leases in doubt, and any other failure gives them
        back (nothing was sent). A success is given back by the caller, with the answer's record."""
        try:
            if self.restarted and claim is not None:
                claim.progress(Started=self.window_start)  # the window a doubt is matched in
            yield self
        except OutcomeUnknown:
            self.doubt(time.time())
            raise
        except BaseException:
            self.release()
            raise

    def doubt(self, ended: float) -> None:
        """The outcome is unknown: hold the others back until the window has passed, no longer."""
        try:
            self.store.doubt_leases(self.keys, self.owner, ended + MARGIN_S)
        except StoreUnavailable:
            pass  # it keeps its longer expiry: safe, only slower for the others


def acquire(store: LeaseStore, keys: list[str], owner: str, hold_s: float, deadline: Deadline,
            window_start: float | None = None, suppression: tuple | None = None) -> Lease:
    """Take the leases until `hold_s` (the attempt's whole time limit: a run that dies keeps them
    until then) plus the margin from now. A lease in the way must have expired by the start of our
    window (`window_start`, default now), or our window would overlap the other attempt's. Waits
    while another attempt holds one, at most WAIT_S and never past the deadline; then raises
    RecipientBusy (nothing was sent).

    `suppression` = (addresses, marketing or a topic's scope, erasure hashes) asks the suppression
    list in the same statement: when one is suppressed, the lease comes back at once with
    `suppressed` set (and held or not: release() it either way)."""
    start = time.time() if window_start is None else window_start
    restarted = False
    pause = _POLL_FIRST_S
    give_up = time.monotonic() + min(WAIT_S, max(0.0, deadline.remaining() - 2.0))
    while True:
        now = time.time()
        until = now + hold_s + MARGIN_S
        window = None
        if suppression is not None:
            # A fourth member, (sender domain, first hour), asks the reputation guard's window too.
            emails, marketing, hashes, *guard = suppression
            found, blocked, *asked = store.admit(emails, marketing, hashes, keys, owner, until, start,
                                                 guard=guard[0] if guard else None)
            window = asked[0] if asked else None
            if found:
                lease = Lease(store, keys if blocked is None else [], owner, start, restarted)
                lease.suppressed, lease.guard = found, window
                return lease
        else:
            blocked = store.take_leases(keys, owner, until, start)
        if blocked is None:
            lease = Lease(store, keys, owner, start, restarted)
            lease.guard = window
            return lease
        blocked_until, in_flight = blocked
        if blocked_until <= now:
            start, restarted = now, True  # expired since our window began: begin it again, now
            continue
        left = give_up - time.monotonic()
        # An attempt in flight gives its leases back the moment it has an answer: worth waiting
        # for. One in doubt only expires: waiting helps only if it expires in time.
        if left <= 0 or (not in_flight and blocked_until - now > left):
            raise RecipientBusy("an earlier attempt to this recipient from this sender is in flight or its outcome"
                                " is not known yet; nothing was sent", field="Destination",
                                retry_after=max(1.0, blocked_until - now))
        time.sleep(min(pause, left, max(0.01, blocked_until - now)))
        pause = min(_POLL_MAX_S, pause * 2)
