"""Topics and one-click unsubscribe (RFC 8058): settings, tokens, and what a mail gets
(docs/topics.md).

Marketing mail (TriggerType 0) may name a topic from the config file's `Topics`. With
`SESMAIL_PUBLIC_URL` and `SESMAIL_UNSUBSCRIBE_SECRETS` set, a marketing SendEmail to one reader
carries `List-Unsubscribe` (a POST to `/unsubscribe?t=<token>` of the webhook function) and
`List-Unsubscribe-Post`, and every marketing mail gets `preferences_url` in its TemplateData for
a visible link to the preference page (`/preferences?t=<token>`).

The token is the reader's authority, so it is signed; it also ends up in gateway logs, so the
address inside it is encrypted. Layout (then base64url, no padding):

    version (1) | key id (4) | tag (16) | issued (4, Unix seconds) | topic length (1) | topic | address*

`key id` is derived from the secret itself, so rotation (a new secret first, the old one still
listed) never renames a key. `tag` is HMAC-SHA256 over everything else with the address in clear,
truncated to 128 bits; `address*` is the address XOR a keystream of HMAC-SHA256(key, tag ||
counter) blocks — the tag doubles as the synthetic IV (the SIV construction), so a token is
tamper-evident as a whole and opening one needs the secret. Nothing is stored per token: sending
costs no store write, and a token never expires.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import re
import struct
import time
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError, Forbidden, InvalidInput
from .log import json_encoder_for

__all__ = ["ALL_TOPICS", "HEADER_POST", "RESERVED_HEADERS", "TOPIC_NAME", "TOPIC_SCOPE", "Reader",
           "add_to_recipients", "apply_to_batch", "apply_to_send", "check_topic", "enabled", "headers_for", "mint",
           "open_token", "preferences_url", "read_settings", "recipient_data", "scope_for", "topic_of", "topic_scope",
           "unsubscribe_url"]

VERSION = 1
ALL_TOPICS = "*"  # a token without a topic: its one-click stops all marketing mail
TOPIC_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
# The suppression list keeps a topic unsubscribe under this scope prefix (marketing mail only).
TOPIC_SCOPE = "topic:"
HEADER_POST = "List-Unsubscribe=One-Click"  # RFC 8058 section 3.1
RESERVED_HEADERS = ("list-unsubscribe", "list-unsubscribe-post")
MAX_TOKEN_CHARS = 1024
_TAG_BYTES = 16  # 128 bits
_KEY_ID_BYTES = 4
_HEAD = struct.Struct(">B4s16sIB")
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
_compact = json_encoder_for(separators=(",", ":"), allow_nan=False)


# -- settings -------------------------------------------------------------------------------------

def read_settings(env: dict) -> tuple[str | None, list[str]]:
    """(`SESMAIL_PUBLIC_URL` without a trailing slash, `SESMAIL_UNSUBSCRIBE_SECRETS`), checked:
    https (http only on this machine), no query or fragment; secrets of at least 16 characters;
    one set without the other is a mistake, not "off"."""
    raw_url = (env.get("SESMAIL_PUBLIC_URL") or "").strip()
    secrets = [part.strip() for part in (env.get("SESMAIL_UNSUBSCRIBE_SECRETS") or "").split(",") if part.strip()]
    url = None
    if raw_url:
        try:
            parts = urlsplit(raw_url)
            host = parts.hostname or ""
        except ValueError as exc:
            raise ConfigError("environment", "SESMAIL_PUBLIC_URL", "is not a URL") from exc
        local = host in _LOCAL_HOSTS
        if parts.scheme not in ("https", "http") or not host or (parts.scheme == "http" and not local):
            raise ConfigError("environment", "SESMAIL_PUBLIC_URL",
                              "must be an https:// URL (http:// only for 127.0.0.1 or localhost)")
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ConfigError("environment", "SESMAIL_PUBLIC_URL", "must have no query, fragment or credentials")
        url = raw_url.rstrip("/")
    if any(len(secret) < 16 for secret in secrets):
        raise ConfigError("environment", "SESMAIL_UNSUBSCRIBE_SECRETS", "each secret must be at least 16 characters")
    if bool(url) != bool(secrets):
        raise ConfigError("environment", "SESMAIL_PUBLIC_URL" if secrets else "SESMAIL_UNSUBSCRIBE_SECRETS",
                          "is required as well: SESMAIL_PUBLIC_URL and SESMAIL_UNSUBSCRIBE_SECRETS together switch"
                          " one-click unsubscribe on")
    return url, secrets


def enabled(settings: Any) -> bool:
    return bool(settings.public_url and settings.unsubscribe_secrets)


def check_topic(settings: Any, topic: Any, field: str = "Topic") -> str:
    if not isinstance(topic, str) or topic not in settings.topics:
        raise InvalidInput(f"{field} names no topic of the config file's Topics", field=field,
                           code="InvalidParameterValue.UnknownTopic")
    return topic


def topic_scope(topic: str) -> str:
    return TOPIC_SCOPE + topic


def scope_for(marketing: bool, topic: str | None) -> bool | str:
    """What the suppression lookup is asked (store `marketing`): False for transactional mail, True
    for marketing mail, and the topic's scope for marketing mail on a topic (which also counts
    "all marketing" unsubscribes)."""
    if not marketing:
        return False
    return topic_scope(topic) if topic else True


# -- tokens ---------------------------------------------------------------------------------------

class _Key:
    __slots__ = ("encrypt", "key_id", "mac", "ref")

    def __init__(self, secret: str) -> None:
        raw = secret.encode("utf-8", "surrogatepass")
        self.key_id = hashlib.sha256(b"sesmail unsubscribe key id\x00" + raw).digest()[:_KEY_ID_BYTES]
        self.mac = hmac.new(raw, b"sesmail unsubscribe mac", hashlib.sha256).digest()
        self.encrypt = hmac.new(raw, b"sesmail unsubscribe encrypt", hashlib.sha256).digest()


@functools.lru_cache(maxsize=16)
def _key(secret: str) -> _Key:
    return _Key(secret)


def _keystream(key: bytes, tag: bytes, length: int) -> bytes:
    blocks = [hmac.new(key, tag + struct.pack(">I", counter), hashlib.sha256).digest()
              for counter in range((length + 31) // 32)]
    return b"".join(blocks)[:length]


def _xor(data: bytes, stream: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(data, stream))


def _tag(key: _Key, key_id: bytes, issued: int, topic: bytes, address: bytes) -> bytes:
    message = struct.pack(">B4sIB", VERSION, key_id, issued, len(topic)) + topic + address
    return hmac.new(key.mac, message, hashlib.sha256).digest()[:_TAG_BYTES]


def mint(secrets: list[str], address: str, topic: str | None, issued: float | None = None) -> str:
    """A token for `address` (stored lower-cased) and `topic` (None: all marketing mail), signed
    with the first secret."""
    key = _key(secrets[0])
    topic_bytes = (topic or ALL_TOPICS).encode("ascii")
    plain = address.strip().lower().encode("utf-8")
    stamp = int(issued if issued is not None else time.time()) & 0xFFFFFFFF
    tag = _tag(key, key.key_id, stamp, topic_bytes, plain)
    body = _HEAD.pack(VERSION, key.key_id, tag, stamp, len(topic_bytes)) + topic_bytes
    sealed = _xor(plain, _keystream(key.encrypt, tag, len(plain)))
    return base64.urlsafe_b64encode(body + sealed).rstrip(b"=").decode("ascii")


class Reader:
    """What a valid token says: the reader's address, the topic (None: all marketing mail), and
    when the token was made (to find the mail that carried it)."""

    __slots__ = ("address", "issued", "tag", "topic")

    def __init__(self, address: str, topic: str | None, issued: int, tag: bytes) -> None:
        self.address, self.topic, self.issued, self.tag = address, topic, issued, tag


def _refuse() -> Forbidden:
    # One answer for every way a token can be wrong: nothing to learn from which check failed.
    return Forbidden("the link is not valid (?t= must be a token from one of our mails)", field="t")


def open_token(secrets: list[str], token: Any) -> Reader:
    """Verify a token against every listed secret (the first signs; the others are retired ones
    still honoured) and decrypt it, or raise Forbidden. Tags are compared in constant time."""
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_CHARS or not secrets:
        raise _refuse()
    try:
        data = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError) as exc:  # binascii.Error is a ValueError
        raise _refuse() from exc
    if len(data) < _HEAD.size:
        raise _refuse()
    version, key_id, tag, issued, topic_length = _HEAD.unpack_from(data)
    topic_bytes = data[_HEAD.size:_HEAD.size + topic_length]
    sealed = data[_HEAD.size + topic_length:]
    if version != VERSION or len(topic_bytes) != topic_length or not sealed:
        raise _refuse()
    found: bytes | None = None
    for secret in secrets:  # every secret is tried: no early exit that times which one matched
        key = _key(secret)
        if not hmac.compare_digest(key.key_id, key_id):
            continue
        plain = _xor(sealed, _keystream(key.encrypt, tag, len(sealed)))
        if hmac.compare_digest(_tag(key, key_id, issued, topic_bytes, plain), tag) and found is None:
            found = plain
    if found is None:
        raise _refuse()
    try:
        address, topic = found.decode("utf-8"), topic_bytes.decode("ascii")
    except UnicodeDecodeError as exc:  # signed by us, so never; kept total all the same
        raise _refuse() from exc
    if topic != ALL_TOPICS and not TOPIC_NAME.fullmatch(topic):
        raise _refuse()
    return Reader(address, None if topic == ALL_TOPICS else topic, issued, tag)


def unsubscribe_url(settings: Any, token: str) -> str:
    return f"{settings.public_url}/unsubscribe?t={token}"


def preferences_url(settings: Any, token: str) -> str:
    # Never ".../unsubscribe": SES counts a tracked click on such a link as its own unsubscribe event,
    # and link scanners click everything.
    return f"{settings.public_url}/preferences?t={token}"


# -- what a mail gets -----------------------------------------------------------------------------

def _reserved_header(raw: Any) -> bool:
    headers = json.loads(raw) if isinstance(raw, str) else raw
    return isinstance(headers, dict) and any(str(name).strip().lower() in RESERVED_HEADERS for name in headers)


def _with_preferences(data: str, url: str) -> str:
    return _compact(dict(json.loads(data or "{}"), preferences_url=url))


def apply_to_send(settings: Any, params: dict) -> bool | str:
    """A validated SendEmail: its `Topic` checked and taken out (SES does not know the field); for
    marketing mail with one-click on, the rules of docs/topics.md applied and the two headers and
    `preferences_url` added. Returns what the suppression lookup is asked (`scope_for`)."""
    topic = params.pop("Topic", None)
    if topic is not None:
        check_topic(settings, topic)
    marketing = params.get("TriggerType", 0) != 1
    on = enabled(settings)
    if on and _reserved_header(params.get("SmtpHeaders")):
        raise InvalidInput("SmtpHeaders may not set List-Unsubscribe or List-Unsubscribe-Post: sesmail writes them",
                           field="SmtpHeaders", code="InvalidParameterValue.ReservedHeader")
    if not marketing or not on:
        return scope_for(marketing, topic)
    if len(params["Destination"]) != 1 or params.get("Cc") or params.get("Bcc"):
        field = "Destination" if len(params["Destination"]) != 1 else ("Cc" if params.get("Cc") else "Bcc")
        raise InvalidInput("marketing mail with one-click unsubscribe has exactly one recipient (one Destination,"
                           " no Cc or Bcc): the header names one reader; send to many through /batch", field=field,
                           code="InvalidParameterValue.OneRecipientForUnsubscribe")
    if str(params.get("Unsubscribe", "0")) != "0":
        raise InvalidInput("Unsubscribe must be \"0\" when sesmail adds its one-click unsubscribe: SES's own link"
                           " would stop all marketing mail, not this topic's", field="Unsubscribe",
                           code="InvalidParameterValue.UnsubscribeConflict")
    from .addresses import bare_address

    token = mint(settings.unsubscribe_secrets, bare_address(params["Destination"][0]), topic)
    headers = json.loads(params.get("SmtpHeaders") or "{}")
    headers.update({"List-Unsubscribe": f"<{unsubscribe_url(settings, token)}>",
                    "List-Unsubscribe-Post": HEADER_POST})
    params["SmtpHeaders"] = _compact(headers)
    template = params["Template"]
    template["TemplateData"] = _with_preferences(template.get("TemplateData") or "{}",
                                                 preferences_url(settings, token))
    return scope_for(True, topic)


def apply_to_batch(settings: Any, params: dict) -> bool | str:
    """A validated BatchSendEmail: its `Topic` checked and taken out. A topic needs inline
    `Recipients`: a list made outside sesmail cannot be checked against unsubscribes. (A scheduled
    or recurring topic batch is fired by sesmail itself, its list built each time: sesmail.schedules.)"""
    topic = params.pop("Topic", None)
    if topic is None:
        return True
    check_topic(settings, topic)
    if "ReceiverId" in params:
        raise InvalidInput("a batch on a ReceiverId list cannot carry a Topic: sesmail cannot leave out readers who"
                           " unsubscribed from a list made elsewhere; send inline Recipients", field="Topic",
                           code="InvalidParameterValue.TopicNeedsRecipients")
    return topic_scope(topic)


def topic_of(scope: bool | str) -> str | None:
    return scope[len(TOPIC_SCOPE):] if isinstance(scope, str) and scope.startswith(TOPIC_SCOPE) else None


def recipient_data(settings: Any, email: str, scope: bool | str, data: str, issued: float | None = None) -> str:
    """A marketing recipient's TemplateData (compact JSON) with its `preferences_url`, when
    one-click is on (otherwise as it is)."""
    if not enabled(settings) or scope is False:
        return data
    token = mint(settings.unsubscribe_secrets, email, topic_of(scope), issued)
    return _with_preferences(data, preferences_url(settings, token))


def add_to_recipients(settings: Any, scope: bool | str, recipients: list[dict], positions: list[int]) -> None:
    """Inline batch recipients (marketing mail): each one's TemplateData gets its `preferences_url`,
    within SES's 800 bytes per list row. `positions`: their indexes in the request."""
    if not enabled(settings):
        return
    from .rules import MAX_RECIPIENT_DATA_BYTES

    issued = time.time()
    for index, recipient in enumerate(recipients):
        data = recipient_data(settings, recipient["Email"], scope, recipient.get("TemplateData") or "{}", issued)
        if len(data.encode("utf-8")) > MAX_RECIPIENT_DATA_BYTES:
            raise InvalidInput(f"Recipients[{positions[index]}].TemplateData with its preferences_url must be at most"
                               f" {MAX_RECIPIENT_DATA_BYTES} bytes of compact JSON",
                               field=f"Recipients[{positions[index]}].TemplateData",
                               code="InvalidParameterValue.TemplateDataLenLimit")
        recipient["TemplateData"] = data


def headers_for(settings: Any, email: str, scope: bool | str, params: dict) -> None:
    """A one-recipient marketing SendEmail sesmail builds itself (a digest's): the two headers and
    `preferences_url`, when one-click is on."""
    if not enabled(settings) or scope is False:
        return
    token = mint(settings.unsubscribe_secrets, email, topic_of(scope))
    params["SmtpHeaders"] = _compact({"List-Unsubscribe": f"<{unsubscribe_url(settings, token)}>",
                                      "List-Unsubscribe-Post": HEADER_POST})
    template = params["Template"]
    params["Template"] = dict(template, TemplateData=_with_preferences(template.get("TemplateData") or "{}",
                                                                       preferences_url(settings, token)))
