"""webhook: SES event callbacks (POST any path ?token=<secret>) stored once; HEAD answers 200.

SCF handler `index.main_handler`. Never imports the SES SDK (cold start:
docs/benchmarks.md#how-each-figure-is-measured).
"""

from sesmail import webhook
from sesmail.http import App, Route

app = App(__file__, "webhook", [
    Route("POST", "*", webhook.receive, public=True),  # the token is checked by webhook.receive
    Route("HEAD", "*", webhook.probe, public=True),
])


def main_handler(event, context):
    return app.handle(event, context)
