"""Random faults for the SES emulator, so retry and idempotency paths meet bad days on purpose.

A chaos spec is a list of rules separated by `;` (or new lines), each `ACTION:KIND=VALUE`, where
ACTION is an SES action or `*` for every action, plus an optional `seed=N` for a repeatable run:

| rule                        | effect on a matching request (drawn independently per request)         |
|-----------------------------|-------------------------------------------------------------------------|
| `error=CODE@RATE`           | answered with that error code; nothing happens                          |
| `http=STATUS@RATE`          | answered with that HTTP status and an HTML body; nothing happens        |
| `drop_before=RATE`          | connection closed before the request is processed; nothing happens      |
| `drop_after=RATE`           | processed (a mail is stored and sent), then the connection is closed:   |
|                             | the reply is lost, the case where a blind retry sends twice             |
| `error_after=CODE@RATE`     | processed (a mail is stored and sent), then answered with that error    |
| `latency=SECONDS`           | added before answering; `0.2`, `200ms`, or a range `50ms-300ms`         |

RATE is a probability (`0.1`) or a percentage (`10%`). Example, in the environment of `make dev`:
`SESMAIL_EMULATOR_CHAOS="SendEmail:error=InternalError@0.1; SendEmail:drop_after=5%; *:latency=50ms-200ms"`.
The same text goes to `POST /_local/chaos` at runtime (`{"Chaos": "<spec>"}`), `GET` shows it
and `DELETE` turns chaos off.
"""

from __future__ import annotations

import random
import re
import threading
from typing import Any, NamedTuple, Optional

__all__ = ["Chaos", "ChaosDecision", "parse"]

KINDS = ("error", "http", "drop_before", "drop_after", "error_after", "latency")
_ENTRY_RE = re.compile(r"([A-Za-z*][A-Za-z0-9*]*)\s*:\s*([a-z_]+)\s*=\s*(\S+)")
_CODE_RE = re.compile(r"[A-Za-z][A-Za-z0-9.]*")


class Rule(NamedTuple):
    action: str
    kind: str
    rate: float  # probability, or 1.0 for latency
    code: str = ""  # error code or HTTP status
    low: float = 0.0  # latency range in seconds
    high: float = 0.0

    def text(self) -> str:
        if self.kind == "latency":
            value = _seconds_text(self.low) + ("" if self.high == self.low else "-" + _seconds_text(self.high))
        elif self.code:
            value = f"{self.code}@{self.rate:g}"
        else:
            value = f"{self.rate:g}"
        return f"{self.action}:{self.kind}={value}"


class ChaosDecision(NamedTuple):
    drop_before: bool = False
    http_status: Optional[int] = None
    error: Optional[str] = None
    drop_after: bool = False
    error_after: Optional[str] = None
    latency: float = 0.0


def _seconds_text(value: float) -> str:
    return f"{value * 1000:g}ms"


def _rate(text: str) -> float:
    value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"rate {text!r} is not between 0 and 1 (or 0% and 100%)")
    return value


def _seconds(text: str) -> float:
    value = float(text[:-2]) / 1000 if text.endswith("ms") else float(text[:-1] if text.endswith("s") else text)
    if value < 0:
        raise ValueError(f"latency {text!r} is negative")
    return value


def parse(spec: str) -> tuple[list[Rule], Optional[int]]:
    """Rules and seed of a spec; ValueError names the entry that is wrong."""
    rules: list[Rule] = []
    seed: Optional[int] = None
    for raw in re.split(r"[;\n]", spec or ""):
        entry = raw.strip()
        if not entry:
            continue
        if entry.startswith("seed="):
            seed = int(entry[5:])
            continue
        match = _ENTRY_RE.fullmatch(entry)
        if match is None or match.group(2) not in KINDS:
            raise ValueError(f"chaos entry {entry!r}: expected ACTION:KIND=VALUE with KIND one of {', '.join(KINDS)}")
        action, kind, value = match.groups()
        try:
            if kind == "latency":
                low, _, high = value.partition("-")
                lo = _seconds(low)
                hi = _seconds(high) if high else lo
                rules.append(Rule(action, kind, 1.0, low=min(lo, hi), high=max(lo, hi)))
            elif kind in ("error", "error_after", "http"):
                code, sep, rate = value.rpartition("@")
                valid = code.isdigit() if kind == "http" else bool(_CODE_RE.fullmatch(code))
                if not sep or not valid:
                    raise ValueError("expected CODE@RATE")
                rules.append(Rule(action, kind, _rate(rate), code=code))
            else:
                rules.append(Rule(action, kind, _rate(value)))
        except ValueError as exc:
            raise ValueError(f"chaos entry {entry!r}: {exc}") from None
    return rules, seed


class Chaos:
    """The rules in force and the random source they draw from (thread-safe)."""

    def __init__(self, spec: str = "") -> None:
        self._lock = threading.Lock()
        self.rules: list[Rule] = []
        self._random = random.Random()
        self.seed: Optional[int] = None
        self.set(spec)

    def set(self, spec: str) -> None:
        rules, seed = parse(spec)  # parse first: a bad spec leaves the old rules in force
        with self._lock:
            self.rules, self.seed = rules, seed
            self._random = random.Random(seed)

    def clear(self) -> None:
        self.set("")

    def describe(self) -> dict[str, Any]:
        with self._lock:
            text = "; ".join([r.text() for r in self.rules] + ([f"seed={self.seed}"] if self.seed is not None else []))
            return {"Chaos": text, "Rules": [r._asdict() for r in self.rules]}

    def draw(self, action: str) -> ChaosDecision:
        with self._lock:
            if not self.rules:
                return ChaosDecision()
            decided: dict[str, Any] = {}
            latency = 0.0
            for rule in self.rules:
                if rule.action not in ("*", action):
                    continue
                if rule.kind == "latency":
                    latency += self._random.uniform(rule.low, rule.high)
                    continue
                hit = self._random.random() < rule.rate
                if not hit or rule.kind in decided:
                    continue
                if rule.kind == "http":
                    decided["http"] = int(rule.code)
                elif rule.kind in ("error", "error_after"):
                    decided[rule.kind] = rule.code
                else:
                    decided[rule.kind] = True
        # One outcome per request, in the order the request would meet them.
        if decided.get("drop_before"):
            return ChaosDecision(drop_before=True, latency=latency)
        if "http" in decided:
            return ChaosDecision(http_status=decided["http"], latency=latency)
        if "error" in decided:
            return ChaosDecision(error=decided["error"], latency=latency)
        if decided.get("drop_after"):
            return ChaosDecision(drop_after=True, latency=latency)
        if "error_after" in decided:
            return ChaosDecision(error_after=decided["error_after"], latency=latency)
        return ChaosDecision(latency=latency)
