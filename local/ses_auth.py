"""The signatures of TencentCloud API 3.0 requests, checked as the server checks them.

Two methods exist, and the SDKs can still be told to use either (`ClientProfile(signMethod=...)`):

**TC3-HMAC-SHA256** (signature v3, https://www.tencentcloud.com/document/product/1084/39391), in
the `Authorization` header. The canonical request is
`METHOD \\n PATH \\n QUERY \\n CanonicalHeaders \\n SignedHeaders \\n hex(sha256(payload))`, where
SignedHeaders is any set of lower-case header names in ASCII order that includes `content-type`
and `host` (Tencent's own demo signs `content-type;host;x-tc-action`), each contributing
`name:value\\n` with its value trimmed and lower-cased; QUERY is the query string as sent (a GET
carries its parameters there, and its payload is empty); the payload is the body's raw bytes, or
the literal `UNSIGNED-PAYLOAD` when `X-TC-Content-SHA256` says so. Clients differ in the signed
host and the scope's service: the Python SDK signs the `Host` header as sent (`127.0.0.1:8090`)
under service `ses`; the Node SDK signs the bare hostname and names the service after the
endpoint's first label (`127` for `127.0.0.1:8090`). Both are accepted. The scope's date must be
the UTC date of `X-TC-Timestamp`, and the timestamp within 5 minutes of the server's clock.

**HmacSHA1 / HmacSHA256** (signature v1), in the parameters themselves (a form-encoded POST body or
a GET query): `Signature` is Base64 of the HMAC, keyed by the SecretKey, of
`METHOD + host + path + "?" + "k=v&..."` over every other parameter sorted by name, values as
they are (not URL-encoded); `SecretId`, `Timestamp`, `Nonce` and `SignatureMethod` (HmacSHA1 when
absent) are among the parameters. This is what `_build_req_with_old_signature` in the Python
SDK's `abstract_client.py` and `formatRequestData` in the Node SDK produce.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import datetime, timezone
from typing import Any, Optional

from .ses_common import ApiError

__all__ = ["MAX_SKEW", "V1_COMMON", "check_tc3", "check_v1"]

MAX_SKEW = 300  # seconds; Tencent answers AuthFailure.SignatureExpire beyond +-5 min
# The common parameters of a v1 request; the rest are the action's own.
V1_COMMON = frozenset({"Action", "Version", "Region", "Timestamp", "Nonce", "SecretId", "Signature",
                       "SignatureMethod", "Token", "Language", "RequestClient"})
_V1_DIGESTS = {"HmacSHA1": hashlib.sha1, "HmacSHA256": hashlib.sha256}
_AUTH_RE = re.compile(
    r"TC3-HMAC-SHA256\s+Credential=([^/\s,]+)/(\d{4}-\d{2}-\d{2})/([^/\s,]+)/tc3_request\s*,\s*"
    r"SignedHeaders=([^,\s]+)\s*,\s*Signature=([0-9a-f]{64})", re.ASCII)
_HEADER_NAME_RE = re.compile(r"[a-z0-9-]+", re.ASCII)
_PORT_RE = re.compile(r"(.+):[0-9]+", re.ASCII)


def check_tc3(*, method: str, path: str, query: str, headers: Any, body: bytes, secret_id: str,
              secret_key: str, now: float, service_name: str = "ses") -> None:
    """Raise the ApiError Tencent answers unless `headers["Authorization"]` signs this request
    (`service_name`: the product's endpoint label, `ses` or `scf`)."""
    match = _AUTH_RE.fullmatch((headers.get("Authorization") or "").strip())
    if match is None:
        raise ApiError("AuthFailure.InvalidAuthorization", "Authorization header format error.")
    given_id, date, service, signed, signature = match.groups()
    if not hmac.compare_digest(given_id.encode(), secret_id.encode()):
        raise ApiError("AuthFailure.SecretIdNotFound", "The SecretId is not found.")
    stamp = _timestamp(headers.get("X-TC-Timestamp"), "X-TC-Timestamp", now)
    names = signed.split(";")
    hosts = _host_forms(headers.get("Host") or "")
    if (names != sorted(set(names)) or not {"content-type", "host"} <= set(names)
            or not all(_HEADER_NAME_RE.fullmatch(name) for name in names)
            or service not in {service_name, *(host.split(".")[0] for host in hosts)}
            or date != datetime.fromtimestamp(stamp, timezone.utc).strftime("%Y-%m-%d")):
        raise ApiError("AuthFailure.SignatureFailure", "The signature scope is not valid.")
    if any(headers.get(name) is None for name in names):
        raise ApiError("AuthFailure.SignatureFailure", "A signed header is missing from the request.")
    # Hash the raw bytes: re-serialising the JSON would change separators and key order.
    payload = b"UNSIGNED-PAYLOAD" if headers.get("X-TC-Content-SHA256") == "UNSIGNED-PAYLOAD" else body
    payload_hash = hashlib.sha256(payload).hexdigest()
    key = ("TC3" + secret_key).encode()
    for part in (date, service, "tc3_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    for host in hosts:
        # The documents lower-case every signed value; the SDKs sign theirs as sent (the same for
        # the values they send), so both spellings are tried.
        for lower in (True, False):
            values = [host if name == "host" else str(headers.get(name)) for name in names]
            canonical_headers = "".join(f"{name}:{_canonical(value, lower)}\n" for name, value in zip(names, values))
            canonical = f"{method}\n{path}\n{query}\n{canonical_headers}\n{signed}\n{payload_hash}"
            to_sign = (f"TC3-HMAC-SHA256\n{stamp}\n{date}/{service}/tc3_request\n"
                       f"{hashlib.sha256(canonical.encode('utf-8')).hexdigest()}")
            expected = hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
            if hmac.compare_digest(expected.encode(), signature.encode()):
                return
    raise ApiError("AuthFailure.SignatureFailure", "The provided credentials could not be validated.")


def check_v1(*, method: str, path: str, host: str, params: dict[str, str], secret_id: str, secret_key: str,
             now: float) -> None:
    """Raise the ApiError Tencent answers unless `params["Signature"]` signs this request."""
    if not hmac.compare_digest((params.get("SecretId") or "").encode(), secret_id.encode()):
        raise ApiError("AuthFailure.SecretIdNotFound", "The SecretId is not found.")
    _timestamp(params.get("Timestamp"), "Timestamp", now)
    nonce = params.get("Nonce") or ""
    if not (nonce.isascii() and nonce.isdigit()):
        raise ApiError("MissingParameter", "The request is missing `Nonce` (a positive integer).")
    digest = _V1_DIGESTS.get(params.get("SignatureMethod") or "HmacSHA1")
    if digest is None:
        raise ApiError("AuthFailure.SignatureFailure", "SignatureMethod must be HmacSHA1 or HmacSHA256.")
    signed = "&".join(f"{name}={value}" for name, value in sorted(params.items()) if name != "Signature")
    signature = (params.get("Signature") or "").encode()
    for form in _host_forms(host):
        message = f"{method}{form}{path}?{signed}".encode()
        expected = base64.b64encode(hmac.new(secret_key.encode(), message, digest).digest())
        if hmac.compare_digest(expected, signature):
            return
    raise ApiError("AuthFailure.SignatureFailure", "The provided credentials could not be validated.")


def _timestamp(raw: Optional[str], name: str, now: float) -> int:
    if not (raw and raw.isascii() and raw.isdigit()):
        raise ApiError("AuthFailure.SignatureFailure", f"{name} is missing or not an integer.")
    stamp = int(raw)
    if abs(now - stamp) > MAX_SKEW:
        raise ApiError("AuthFailure.SignatureExpire", "The signature expired: the timestamp differs "
                       "from server time by more than 5 minutes.")
    return stamp


def _host_forms(host: str) -> list[str]:
    """The Host header as sent, then without its port (`[::1]:8090` -> `[::1]`)."""
    match = _PORT_RE.fullmatch(host)
    bare = match.group(1) if match and not match.group(1).endswith(":") else host
    return list(dict.fromkeys((host, bare)))


def _canonical(value: str, lower: bool) -> str:
    value = value.strip()
    return value.lower() if lower else value
