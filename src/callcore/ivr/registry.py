"""Which flow handles a call: the DID table from config, then the default flow.

YAML flows (config ``flows:``) run through the IVR runner; a few flows written in Python (``CODE_FLOWS``:
the first demo, and test flows) can be routed to as well.
"""

from __future__ import annotations

from callcore.acd.callback_booking import CallbackBooker
from callcore.acd.callback_guard import CallbackGuard, DncLookup
from callcore.acd.web_callbacks import WebCallbacks
from callcore.calls.call import Call
from callcore.calls.runtime import Handler, Router
from callcore.config import CallcoreConfig
from callcore.ivr import demo
from callcore.ivr.lookup import LookupClient
from callcore.ivr.runner import FlowBundle, FlowRunner, QueueHandler, bridge_to_endpoint

CODE_FLOWS: dict[str, Handler] = {
    "say_digit": demo.say_digit,
}


def make_router(
    config: CallcoreConfig,
    lookups: LookupClient,
    *,
    code_flows: dict[str, Handler] | None = None,
    queue_handler: QueueHandler = bridge_to_endpoint,
    dnc: DncLookup | None = None,
    callbacks: WebCallbacks | None = None,
) -> Router:
    """A router bound to one config version: calls it routes keep that version for their whole IVR. ``dnc``:
    the do-not-call lookup of callback nodes' number check (None: the number policy of ``callbacks:`` only);
    ``callbacks``: where callback nodes book their callbacks (None: none can be booked, callers are told so)."""
    bundle = FlowBundle(config.ivr(), config.version)
    booker = CallbackBooker(CallbackGuard(config.callbacks, dnc), callbacks)
    code = {**CODE_FLOWS, **(code_flows or {})}
    dids = dict(config.inbound.dids)
    default = config.inbound.default_flow

    def route(call: Call) -> Handler | None:
        name = dids.get(call.did, default)
        if name is None:
            return None
        flow = bundle.ivr.flows.get(name)
        if flow is not None:
            return lambda c: FlowRunner(c, flow, bundle, lookups, queue_handler, booker).run()
        return code.get(name)

    return route
