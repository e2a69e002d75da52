"""Which flow handles a call: the DID table from config, then the default flow."""

from __future__ import annotations

from callcore.calls.call import Call
from callcore.calls.runtime import Handler, Router
from callcore.config import CallcoreConfig
from callcore.ivr import demo

FLOWS: dict[str, Handler] = {
    "say_digit": demo.say_digit,
}


def make_router(config: CallcoreConfig, flows: dict[str, Handler] | None = None) -> Router:
    table = flows or FLOWS
    dids = dict(config.inbound.dids)
    default = config.inbound.default_flow

    def route(call: Call) -> Handler | None:
        name = dids.get(call.did, default)
        return table.get(name) if name else None

    return route
