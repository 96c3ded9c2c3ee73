"""send: POST /send (or POST /) -> SES SendEmail; message status; suppressions; erasure; statistics,
the reputation guard and the dashboard.

SCF handler `index.main_handler`. The layer (`sesmail`, in /opt) does the work; this file only
says which routes this function serves.
"""

import os

from sesmail import guard, sending, stats
from sesmail.http import App, Route

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")

app = App(__file__, "send", [
    Route("POST", "/send", sending.send_email, scope="send"),
    Route("POST", "/", sending.send_email, scope="send"),
    Route("GET", "/messages/{MessageId}", sending.message_status, scope="send"),
    Route("GET", "/suppressions", sending.list_suppressions, scope="admin"),
    Route("PUT", "/suppressions/{Address}", sending.add_suppression, scope="admin"),
    Route("DELETE", "/suppressions/{Address}", sending.remove_suppression, scope="admin"),
    Route("DELETE", "/addresses/{Address}", sending.erase_address, scope="admin"),
    Route("GET", "/stats", stats.get_stats, scope="stats"),
    Route("GET", "/guard", guard.list_guard, scope="stats"),
    Route("DELETE", "/guard/{Domain}", guard.lift, scope="admin"),
    # The dashboard: static files, no data in them (the page asks for a `stats` key).
    Route("GET", "/dashboard", stats.static_route(STATIC, "dashboard.html"), public=True),
    Route("GET", "/dashboard/dashboard.js", stats.static_route(STATIC, "dashboard.js"), public=True),
    Route("GET", "/dashboard/dashboard.css", stats.static_route(STATIC, "dashboard.css"), public=True),
], direct=Route("INVOKE", "/send", sending.send_email, scope="send"))


def main_handler(event, context):
    return app.handle(event, context)
