"""Schemathesis against the shipped OpenAPI document, over real HTTP to the local stack.

Every operation of openapi.json, with data that fits the schema (positive) and data that breaks it
(negative), sent through the gateway of `local.stack.Stack` (free ports, its own SES emulator with
SES's limits, sender and template checks), as Function URL events and as API Gateway events.
Checks: Schemathesis's `not_a_server_error`, `status_code_conformance`, `content_type_conformance`
and `response_schema_conformance`, plus this project's own (`harness.check_answer` on the HTTP
answer: the error shape of docs/api.md and code families, and no SES call behind anything but a 200).
Most cases carry the stack's credentials (Bearer dev-key, ?token=dev-secret) so they reach
validation; some go without, and nothing may succeed then.
"""

from __future__ import annotations

import os

import pytest

try:
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from schemathesis import GenerationMode
except ImportError:  # schemathesis needs Python 3.11+ (requirements-dev.txt installs it there)
    pytest.skip("schemathesis is not installed", allow_module_level=True)

from local.stack import Stack
from sesmail import config, policy, ses, store
from tests.fuzz.harness import LONG, check_answer, figures_of

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
API_KEY, WEBHOOK_SECRET = "dev-key", "dev-secret"
SCHEMA = schemathesis.openapi.from_path(os.path.join(ROOT, "openapi.json"))
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]
CHECKS = [schemathesis.checks.not_a_server_error, schemathesis.checks.content_type_conformance,
          schemathesis.checks.response_schema_conformance, schemathesis.checks.status_code_conformance]
FRAMING = ("content-length", "transfer-encoding", "host", "connection", "expect")
EXAMPLES = 300 if LONG else 10  # per operation, generation mode and event shape


@pytest.fixture(scope="module", params=["function-url", "apigw"])
def stack(request, tmp_path_factory):
    """The local stack as `make dev` runs it (or `make dev` with --apigw: API Gateway events), on
    free ports, with its credentials pinned."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(("SESMAIL_", "TENCENTCLOUD_")):
                patch.delenv(name)
        patch.setenv("SESMAIL_API_KEYS", API_KEY)
        patch.setenv("SESMAIL_WEBHOOK_SECRETS", WEBHOOK_SECRET)
        patch.setenv("SESMAIL_EMULATOR_CALLBACK_URL", "off")  # one request, one answer: nothing posted behind
        for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"):
            patch.delenv(name, raising=False)
        patch.setenv("NO_PROXY", "127.0.0.1,localhost")
        config.reset()
        store.reset()
        policy.reset()
        ses.reset()
        running = Stack(gateway_port=0, emulator_port=0, data_dir=str(tmp_path_factory.mktemp("stack")),
                        apigw=request.param == "apigw").start()
        try:
            yield running
        finally:
            running.stop()
            store.reset()
            ses.reset()
            config.reset()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_every_operation_of_the_openapi_document_never_answers_5xx(stack, operation, mode, request):
    figures = figures_of(request.config, "_sesmail_fuzz_figures")
    emulator = stack.emulator

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=not LONG,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode), credentials=st.integers(0, 5))
    def run(case, credentials):
        emulator.reset()  # this case's SES traffic only
        # Negative cases may carry HTTP framing headers (Content-Length: ":"): the transport's, not
        # the API's; SCF's gateway answers those itself (see the gateway test below).
        for name in [name for name in case.headers or {} if name.lower() in FRAMING]:
            del case.headers[name]
        # X-Api-Key wins over Authorization in the layer, and the schema's apiKey scheme makes
        # Schemathesis generate one: both carry the real key.
        headers = {"Authorization": f"Bearer {API_KEY}", "X-Api-Key": API_KEY} if credentials else {}
        params = {"token": WEBHOOK_SECRET} if credentials else {}
        response = case.call(base_url=stack.gateway.url, headers=headers, params=params, timeout=30)
        case.validate_response(response, checks=CHECKS)
        # Schemathesis keeps header names lower-cased, each with a list of values.
        headers_seen = {name: ", ".join(values) for name, values in response.headers.items()
                        if name not in ("content-length", "date", "server", "connection")}
        if "content-type" in headers_seen:
            headers_seen["Content-Type"] = headers_seen.pop("content-type")
        answer = {"isBase64Encoded": False, "statusCode": response.status_code, "headers": headers_seen,
                  "body": response.text}
        if response.status_code == 204 or case.method.upper() == "HEAD":
            answer["body"] = ""
        check_answer(answer, list(emulator.calls))
        if not credentials:  # nothing succeeds without a key or token
            assert response.status_code >= 400, (case.method, case.path, response.status_code)
        figures.add("schemathesis cases")
        figures.add(f"schemathesis answers {response.status_code}")

    run()


def test_the_local_gateway_answers_a_malformed_content_length_with_400(stack):
    import socket

    host, port = stack.gateway.server.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as connection:
        connection.sendall(b"DELETE /addresses/0 HTTP/1.1\r\nHost: local\r\nContent-Length: :\r\n\r\n")
        reply = connection.recv(200)
    assert reply.startswith(b"HTTP/1.1 400"), reply
