"""send: POST /send (or POST /) -> SES SendEmail; message status; suppressions; erasure.

SCF handler `index.main_handler`. The layer (`sesmail`, in /opt) does the work; this file only
says which routes this function serves.
"""

from sesmail import sending
from sesmail.http import App, Route

app = App(__file__, "send", [
    Route("POST", "/send", sending.send_email, scope="send"),
    Route("POST", "/", sending.send_email, scope="send"),
    Route("GET", "/messages/{MessageId}", sending.message_status, scope="send"),
    Route("GET", "/suppressions", sending.list_suppressions, scope="admin"),
    Route("PUT", "/suppressions/{Address}", sending.add_suppression, scope="admin"),
    Route("DELETE", "/suppressions/{Address}", sending.remove_suppression, scope="admin"),
    Route("DELETE", "/addresses/{Address}", sending.erase_address, scope="admin"),
], direct=Route("INVOKE", "/send", sending.send_email, scope="send"))


def main_handler(event, context):
    return app.handle(event, context)
