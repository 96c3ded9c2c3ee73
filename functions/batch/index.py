"""batch: POST /batch -> SES BatchSendEmail; task status; schedules; digest items; timer runs.

SCF handler `index.main_handler`. Timer events (digests, jobs, batch payloads) are keyed by
TriggerName + Time, so SCF's retries of a failed run never send twice.
"""

from sesmail import batching, digest, schedules, timers
from sesmail.http import App, Route

app = App(__file__, "batch", [
    Route("POST", "/batch", batching.batch_send, scope="batch"),
    Route("GET", "/batch/tasks/{TaskId}", batching.task_status, scope="batch"),
    Route("DELETE", "/batch/tasks/{TaskId}", schedules.cancel, scope="batch"),
    Route("POST", "/digest/items", digest.queue_items, scope="digest"),
], timer=timers.fire)


def main_handler(event, context):
    return app.handle(event, context)
