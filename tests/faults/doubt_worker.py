"""One "SCF instance" of the interleaved-doubt scenario: a process of its own that loads the send
function and works through its share of requests, retrying in random order.

Run by tests/faults/test_interleaved_doubts.py as `python -m tests.faults.doubt_worker <json>`;
prints one JSON line per answer. A keyed request is retried (same key, same body) on 409, 429 and
503 until it gets its 200; a request without a key is repeated only when the answer says nothing
was sent (`Outcome: NotSent`, or a 409/429), as a careful caller would.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time


def main() -> None:
    job = json.loads(sys.argv[1])
    os.environ.update(job["Env"])
    from sesmail import leases
    from tests.conftest import load_function
    from tests.events import context, http_event

    # The emulator's RequestTime and our clock are this machine's one clock: no skew to allow for,
    # which keeps the windows (and so the scenario) short.
    leases.CLOCK_SKEW_S = 0
    leases.MARGIN_S = 2
    send = load_function("send").main_handler
    rng = random.Random(job["Seed"])
    pending = list(job["Requests"])
    give_up = time.monotonic() + job["Seconds"]
    while pending and time.monotonic() < give_up:
        request = rng.choice(pending)
        headers = {"Idempotency-Key": request["Key"]} if request["Key"] else {}
        result = send(http_event(request["Body"], headers=headers), context(time_limit_ms=10000))
        body = json.loads(result["body"])
        error = body.get("Error") or {}
        print("ANSWER " + json.dumps({"Id": request["Id"], "Key": request["Key"], "Status": result["statusCode"],
                          "Code": error.get("Code"), "Outcome": error.get("Outcome"),
                          "MessageId": body.get("MessageId")}), flush=True)
        status = result["statusCode"]
        if status == 200 or status not in (409, 429, 503):
            pending.remove(request)
        elif not request["Key"] and status == 503 and error.get("Outcome") != "NotSent":
            pending.remove(request)  # without a key, an unknown outcome is not safe to repeat
        else:
            time.sleep(rng.uniform(0.05, 0.4))


if __name__ == "__main__":
    main()
