import pytest

from callcore.ari.client import AriClient, _query
from callcore.ari.errors import AriAuthError, AriConflict, AriNotFound, AriUnavailable
from tests.fakes.fake_ari import APP, FakeAri


def test_query_parameters_are_encoded_the_way_ari_expects():
    assert _query({"a": True, "b": False, "media": ["sound:x", "digits:12"], "n": 3, "skip": None}) == {
        "a": "true", "b": "false", "media": "sound:x,digits:12", "n": "3"}


async def test_given_a_gone_channel_when_answering_then_not_found_is_raised(fake_ari: FakeAri, ari: AriClient):
    with pytest.raises(AriNotFound) as err:
        await ari.channels.answer("no-such-channel")
    assert err.value.status == 404 and "Channel not found" in str(err.value)


async def test_given_a_conflict_when_requesting_then_conflict_is_raised(fake_ari: FakeAri, ari: AriClient):
    ch = await fake_ari.new_call()
    fake_ari.fail_requests[("POST", "/answer")] = 409
    with pytest.raises(AriConflict):
        await ari.channels.answer(ch.id)
    fake_ari.fail_requests[("POST", "/answer")] = 422
    with pytest.raises(AriConflict):
        await ari.channels.answer(ch.id)


async def test_given_server_errors_or_no_server_then_unavailable_is_raised(fake_ari: FakeAri, ari: AriClient):
    fake_ari.fail_requests[("GET", "/asterisk/info")] = 503
    with pytest.raises(AriUnavailable):
        await ari.asterisk.info()
    nobody = AriClient("http://127.0.0.1:9", "u", "p", APP, request_timeout=2)
    try:
        with pytest.raises(AriUnavailable) as err:
            await nobody.asterisk.info()
        assert err.value.status == 0
    finally:
        await nobody.close()


async def test_given_wrong_credentials_then_auth_error_is_raised(fake_ari: FakeAri):
    bad = AriClient(fake_ari.base_url, "callcore", "nope", APP)
    try:
        with pytest.raises(AriAuthError):
            await bad.asterisk.info()
    finally:
        await bad.close()


async def test_given_a_live_channel_then_typed_resources_come_back(fake_ari: FakeAri, ari: AriClient):
    ch = await fake_ari.new_call(exten="1234")
    (listed,) = await ari.channels.list()
    assert listed.id == ch.id and listed.dialplan.exten == "1234" and listed.caller.number == "+31201234567"
    pb = await ari.channels.play(ch.id, ["sound:hello-world"], playback_id="pb-1")
    assert pb.id == "pb-1" and pb.target_uri == f"channel:{ch.id}"
    info = await ari.asterisk.info()
    assert info.system is not None and info.system.version.startswith("22")
