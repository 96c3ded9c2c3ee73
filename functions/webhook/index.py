"""webhook: SES event callbacks (POST any path ?token=<secret>) stored once; HEAD answers 200.
Readers' one-click unsubscribe (POST /unsubscribe?t=) and preference page (/preferences?t=).

SCF handler `index.main_handler`. Never imports the SES SDK (cold start:
docs/benchmarks.md#how-each-figure-is-measured).
"""

from sesmail import preferences, webhook
from sesmail.http import App, Route

app = App(__file__, "webhook", [
    # The token in ?t= is the authority (docs/topics.md): no API key.
    Route("POST", "/unsubscribe", preferences.one_click, public=True),
    Route("GET", "/unsubscribe", preferences.page, public=True),
    Route("GET", "/preferences", preferences.page, public=True),
    Route("POST", "/preferences", preferences.save, public=True),
    Route("POST", "*", webhook.receive, public=True),  # the token is checked by webhook.receive
    Route("HEAD", "*", webhook.probe, public=True),
])


def main_handler(event, context):
    return app.handle(event, context)
