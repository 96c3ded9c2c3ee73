"""The SCF fake answers as SCF does: signatures, the SDK's models, limits and error codes."""

from __future__ import annotations

import base64
import io
import json
import re
import zipfile

import pytest
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.scf.v20180416 import errorcodes, scf_client

from local import scf_emulator
from tests.deploy.conftest import SECRET_ID, SECRET_KEY, TOKEN

# Tencent Cloud's common error codes (https://cloud.tencent.com/document/api/583/17241).
COMMON = {"AuthFailure.InvalidAuthorization", "AuthFailure.SecretIdNotFound", "AuthFailure.SignatureExpire",
          "AuthFailure.SignatureFailure", "AuthFailure.TokenFailure", "InternalError", "InvalidAction",
          "InvalidParameter", "InvalidParameterValue", "MissingParameter", "NoSuchVersion", "UnknownParameter",
          "UnsupportedProtocol", "UnsupportedRegion"}


@pytest.fixture
def client(scf_fake, monkeypatch):
    monkeypatch.setenv("NO_PROXY", f"127.0.0.1,{scf_fake.endpoint}")
    scf_fake.busy_seconds = 0.0  # Active at once, unless a test says otherwise

    def make(key: str = SECRET_KEY, token: str = TOKEN, region: str = "ap-guangzhou") -> scf_client.ScfClient:
        profile = ClientProfile(httpProfile=HttpProfile(endpoint=scf_fake.endpoint, protocol="http"))
        return scf_client.ScfClient(credential.Credential(SECRET_ID, key, token), region, profile)
    return make


def code_of(client, action: str, **params) -> str:
    with pytest.raises(TencentCloudSDKException) as caught:
        client.call_json(action, params)
    return caught.value.code


def a_zip() -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.py", "def main_handler(event, context):\n    return {}\n")
    return base64.b64encode(buffer.getvalue()).decode()


def create(client, name: str = "fn", **params) -> None:
    client.call_json("CreateFunction", dict({"FunctionName": name, "Runtime": "Python3.9",
                                             "Code": {"ZipFile": a_zip()}}, **params))


def test_every_error_code_the_fake_answers_is_scfs_own_or_a_common_one():
    with open(scf_emulator.__file__, encoding="utf-8") as handle:
        used = set(re.findall(r'ApiError\(\s*"([A-Za-z.]+)"', handle.read()))
    sdk = {value for name, value in vars(errorcodes).items() if name.isupper()}
    assert used and used - sdk - COMMON == set()


def test_signatures_tokens_versions_and_regions_are_checked(client):
    assert code_of(client(key="wrong"), "ListLayerVersions", LayerName="x") == "AuthFailure.SignatureFailure"
    assert code_of(client(token="stale"), "ListLayerVersions", LayerName="x") == "AuthFailure.TokenFailure"
    assert code_of(client(region="mars-1"), "ListLayerVersions", LayerName="x") == "UnsupportedRegion"
    assert code_of(client(), "ListLayerVersions", LayerName="x") == "ResourceNotFound.Layer"


def test_a_field_the_sdks_model_does_not_know_is_refused_even_nested(client):
    c = client()
    assert code_of(c, "GetFunction", FunctionName="fn", Qualifierr="1") == "UnknownParameter"
    assert code_of(c, "CreateFunction", FunctionName="fn", Runtime="Python3.9",
                   Code={"ZipFile": a_zip(), "Zip": "x"}) == "UnknownParameter"
    assert code_of(c, "CreateFunction", FunctionName="fn", Runtime="Python3.9", Code={"ZipFile": a_zip()},
                   MemorySize="lots") == "InvalidParameterValue"
    assert code_of(c, "CreateFunction", FunctionName="fn", Runtime="Python3.9") == "MissingParameter.Code"


def test_functions_are_created_once_and_missing_ones_are_not_found(client):
    c = client()
    assert code_of(c, "GetFunction", FunctionName="fn") == "ResourceNotFound.Function"
    create(c)
    assert code_of(c, "CreateFunction", FunctionName="fn", Runtime="Python3.9",
                   Code={"ZipFile": a_zip()}) == "ResourceInUse.Function"
    got = c.call_json("GetFunction", {"FunctionName": "fn"})["Response"]
    assert (got["Status"], got["MemorySize"], got["Timeout"]) == ("Active", 128, 3)
    assert c.call_json("GetAlias", {"FunctionName": "fn", "Name": "$DEFAULT"})["Response"]["FunctionVersion"] == \
        "$LATEST"


@pytest.mark.parametrize(("params", "code"), [
    ({"MemorySize": 100}, "InvalidParameterValue.MemorySize"),
    ({"MemorySize": 3200}, "InvalidParameterValue.MemorySize"),
    ({"Timeout": 901}, "LimitExceeded.Timeout"),
    ({"Runtime": "Python3.8"}, "InvalidParameterValue.Runtime"),
    ({"Handler": "main_handler"}, "InvalidParameterValue.Handler"),
    ({"Environment": {"Variables": [{"Key": "TENCENTCLOUD_SECRETID", "Value": "x"}]}},
     "InvalidParameterValue.SystemEnvironment"),
    ({"Environment": {"Variables": [{"Key": f"SESMAIL_V{i}", "Value": "x" * 200} for i in range(25)]}},
     "InvalidParameterValue.EnvironmentExceededLimit"),
    ({"Layers": [{"LayerName": "nope", "LayerVersion": 1}]}, "ResourceNotFound.Layer"),
    ({"VpcConfig": {"VpcId": "vpc-1", "SubnetId": ""}}, "InvalidParameterValue.Vpc"),
    ({"DeadLetterConfig": {"Type": "KAFKA", "Name": "q"}}, "InvalidParameterValue.DeadLetterConfig"),
    ({"FunctionName": "9lives"}, "InvalidParameterValue.FunctionName"),
])
def test_scfs_documented_limits_are_refused_with_its_codes(client, params, code):
    c = client()
    request = dict({"FunctionName": "fn", "Runtime": "Python3.9", "Code": {"ZipFile": a_zip()}}, **params)
    assert code_of(c, "CreateFunction", **request) == code


def test_layers_count_versions_and_bindings(client):
    c = client()
    content = {"ZipFile": a_zip()}
    for _ in range(2):
        c.call_json("PublishLayerVersion", {"LayerName": "deps", "CompatibleRuntimes": ["Python3.9"],
                                            "Content": content})
    versions = c.call_json("ListLayerVersions", {"LayerName": "deps"})["Response"]["LayerVersions"]
    assert [v["LayerVersion"] for v in versions] == [2, 1]
    assert code_of(c, "GetLayerVersion", LayerName="deps", LayerVersion=3) == "ResourceNotFound.LayerVersion"
    six = [{"LayerName": "deps", "LayerVersion": 1}] * 6
    assert code_of(c, "CreateFunction", FunctionName="fn", Runtime="Python3.9", Code=content,
                   Layers=six) == "InvalidParameterValue.Layers"
    assert code_of(c, "PublishLayerVersion", LayerName="deps", CompatibleRuntimes=["Python3.9"],
                   Content={"ZipFile": "bm90IGEgemlw"}) == "InvalidParameterValue.ZipFile"


def test_a_function_being_updated_refuses_another_write(client, scf_fake):
    c = client()
    scf_fake.busy_seconds = 30
    create(c)
    assert c.call_json("GetFunction", {"FunctionName": "fn"})["Response"]["Status"] == "Creating"
    assert code_of(c, "UpdateFunctionConfiguration", FunctionName="fn", Timeout=5) == \
        "FailedOperation.FunctionStatusError"
    assert code_of(c, "CreateTrigger", FunctionName="fn", TriggerName="t", Type="timer",
                   TriggerDesc="0 0 9 * * * *") == "FailedOperation.CreateTrigger"
    assert code_of(c, "PublishVersion", FunctionName="fn") == "FailedOperation.PublishVersion"


def test_timers_read_back_in_scfs_shape_and_names_are_unique(client):
    c = client()
    create(c)
    c.call_json("CreateTrigger", {"FunctionName": "fn", "TriggerName": "daily", "Type": "timer",
                                  "TriggerDesc": "0 0 9 * * * *", "Enable": "OPEN", "Qualifier": "$DEFAULT",
                                  "CustomArgument": '{"Job": "cleanup"}'})
    (row,) = c.call_json("ListTriggers", {"FunctionName": "fn"})["Response"]["Triggers"]
    assert (json.loads(row["TriggerDesc"]), row["Enable"], row["Qualifier"]) == (
        {"cron": "0 0 9 * * * *"}, 1, "$DEFAULT")
    assert code_of(c, "CreateTrigger", FunctionName="fn", TriggerName="daily", Type="timer",
                   TriggerDesc="0 0 9 * * * *") == "ResourceInUse.Trigger"
    assert code_of(c, "CreateTrigger", FunctionName="fn", TriggerName="bad", Type="timer",
                   TriggerDesc="0 0 25 * * * *") == "InvalidParameterValue.TriggerCronConfig"
    assert code_of(c, "CreateTrigger", FunctionName="fn", TriggerName="url", Type="http",
                   TriggerDesc='{"AuthType": "NONE"}') == "InvalidParameterValue.TriggerDesc"
    assert code_of(c, "DeleteTrigger", FunctionName="fn", TriggerName="nope", Type="timer") == \
        "ResourceNotFound.Trigger"


def test_versions_and_aliases(client):
    c = client()
    create(c)
    assert c.call_json("PublishVersion", {"FunctionName": "fn"})["Response"]["FunctionVersion"] == "1"
    assert code_of(c, "UpdateAlias", FunctionName="fn", Name="$DEFAULT", FunctionVersion="7") == \
        "ResourceNotFound.Version"
    assert code_of(c, "GetAlias", FunctionName="fn", Name="live") == "ResourceNotFound.Alias"
    c.call_json("CreateAlias", {"FunctionName": "fn", "Name": "live", "FunctionVersion": "1"})
    assert code_of(c, "CreateAlias", FunctionName="fn", Name="live", FunctionVersion="1") == "ResourceInUse.Alias"
    page = c.call_json("ListVersionByFunction", {"FunctionName": "fn"})["Response"]
    assert page["FunctionVersion"] == ["$LATEST", "1"] and page["TotalCount"] == 2
