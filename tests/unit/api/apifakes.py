"""Fakes of the services the API calls (callcore.api.services), and a client that knows the test tokens."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from callcore.acd import agent_state as st
from callcore.acd.conversation import ConversationError
from callcore.acd.model import AcdConfig, AgentConfig, QueueConfig
from callcore.api.auth import Authenticator, Role, StaticTokens, hash_token
from callcore.api.idempotency import IdempotencyStore, MemoryIdempotencyStore
from callcore.api.metrics import Metrics
from callcore.api.server import create_app
from callcore.api.services import ApiServices, NotFound
from callcore.events import AgentEvent, CallEvent

# principal name -> (token, role, bound agent)
TOKENS: dict[str, tuple[str, Role, str | None]] = {
    "admin": ("cc_test-admin", Role.admin, None),
    "supervisor": ("cc_test-supervisor", Role.supervisor, None),
    "agent": ("cc_test-agent-a1", Role.agent, "a1"),
    "other_agent": ("cc_test-agent-a2", Role.agent, "a2"),
    "integrator": ("cc_test-integrator", Role.integrator, None),
}
PRINCIPALS = list(TOKENS)

CALL1 = uuid.UUID("01900000-0000-7000-8000-000000000001")
CALL2 = uuid.UUID("01900000-0000-7000-8000-000000000002")
UNKNOWN_CALL = uuid.UUID("01900000-0000-7000-8000-0000000000ff")


def acd_config() -> AcdConfig:
    agents = {
        "a1": AgentConfig(name="Anna", endpoint="PJSIP/a1", skills={"sales": 5}, queues=["sales"]),
        "a2": AgentConfig(name="Bob", endpoint="PJSIP/a2", skills={"billing": 7}, queues=["billing", "sales"]),
        "a3": AgentConfig(name="Cem", endpoint="PJSIP/a3", skills={"sales": 2}, queues=["billing"]),
    }
    queues = {"sales": QueueConfig(required_skills={"sales": 1}), "billing": QueueConfig()}
    return AcdConfig(skills=["sales", "billing", "language:nl"], agents=agents, queues=queues)


class Sink:
    def __init__(self) -> None:
        self.events: list[CallEvent | AgentEvent] = []

    def emit(self, event: CallEvent | AgentEvent) -> None:
        self.events.append(event)


@dataclass
class Waiting:
    id: str
    queue: str
    priority: int
    enqueued_at: float
    assigned: str | None = None


class FakeAcd:
    """AcdControl over the real, pure agent state machine, with a clock the test moves."""

    def __init__(self, config: AcdConfig | None = None, sink: Sink | None = None) -> None:
        self.config = config or acd_config()
        self.sink = sink or Sink()
        self.clock = 1000.0
        self.agents: dict[str, st.AgentStatus] = {
            a: st.new_agent(a, max_calls=c.max_calls, now=self.clock) for a, c in self.config.agents.items()
        }
        self.waiting: dict[str, Waiting] = {}

    def now(self) -> float:
        return self.clock

    def _apply(self, agent_id: str, event: Any) -> None:
        if agent_id not in self.agents:
            raise KeyError(agent_id)
        self.agents[agent_id], _ = st.apply(self.agents[agent_id], event, self.clock)

    def login(self, agent_id: str, *, paused: bool = False) -> None:
        self._apply(agent_id, st.Login(paused=paused))

    def logout(self, agent_id: str) -> None:
        self._apply(agent_id, st.Logout())

    def ready(self, agent_id: str) -> None:
        self._apply(agent_id, st.Ready())

    def pause(self, agent_id: str, reason: str = "break") -> None:
        self._apply(agent_id, st.Pause(reason))

    def end_wrap_up(self, agent_id: str) -> None:
        self._apply(agent_id, st.Ready())

    def set_skills(self, agent_id: str, skills: dict[str, int]) -> None:
        cfg = self.config.agents[agent_id]
        self.config.agents[agent_id] = cfg.model_copy(update={"skills": dict(skills)})

    # -- test helpers --------------------------------------------------------------------------------------
    def on_call(self, agent_id: str, call_id: uuid.UUID) -> None:
        if self.agents[agent_id].state == "logged_out":
            self.login(agent_id)
        self._apply(agent_id, st.Offered(str(call_id)))
        self._apply(agent_id, st.Answered(str(call_id)))

    def in_wrap_up(self, agent_id: str, call_id: uuid.UUID = CALL2, seconds: float = 30.0) -> None:
        self.on_call(agent_id, call_id)
        self._apply(agent_id, st.CallEnded(str(call_id), wrap_up_seconds=seconds))

    def enqueue(self, call_id: uuid.UUID, queue: str, *, priority: int = 0, waited: float = 0.0,
                assigned: str | None = None) -> None:
        self.waiting[str(call_id)] = Waiting(str(call_id), queue, priority, self.clock - waited, assigned)


@dataclass
class FakeCall:
    call_id: uuid.UUID
    channel_id: str = "chan-1"
    direction: str = "inbound"
    did: str = "1000"
    caller_number: str = "0612345678"
    answered: bool = True
    adopted: bool = False
    variables: dict[str, str] = field(default_factory=dict)


class FakeRegistry:
    def __init__(self) -> None:
        self.live: list[FakeCall] = []

    def calls(self) -> list[FakeCall]:
        return list(self.live)


class FakeStore:
    def __init__(self) -> None:
        self.rows: dict[uuid.UUID, dict[str, Any]] = {}
        self.events: dict[uuid.UUID, list[dict[str, Any]]] = {}

    async def call_row(self, call_id: uuid.UUID) -> Mapping[str, Any] | None:
        return self.rows.get(call_id)

    async def call_events(self, call_id: uuid.UUID) -> list[dict[str, Any]]:
        return self.events.get(call_id, [])


class FakeConversations:
    """ConversationControl: records what it was asked; ``refuse`` makes it raise ConversationError."""

    def __init__(self) -> None:
        self.requests: list[tuple[Any, ...]] = []
        self.refuse: str | None = None

    async def _do(self, *request: Any) -> dict[str, Any]:
        if self.refuse:
            raise ConversationError(self.refuse)
        self.requests.append(request)
        return {"done": request[0]}

    async def transfer(self, agent_id: str, *, queue: str | None = None, to_agent: str | None = None,
                       number: str | None = None) -> Any:
        return await self._do("transfer", agent_id, queue, to_agent, number)

    async def consult(self, agent_id: str, *, to_agent: str | None = None, number: str | None = None) -> Any:
        return await self._do("consult", agent_id, to_agent, number)

    async def complete_transfer(self, agent_id: str) -> Any:
        return await self._do("complete", agent_id)

    async def cancel_consult(self, agent_id: str) -> Any:
        return await self._do("cancel", agent_id)

    async def conference(self, agent_id: str) -> Any:
        return await self._do("conference", agent_id)

    async def recording(self, agent_id: str, operation: str) -> Any:
        return await self._do("recording", agent_id, operation)

    async def supervise(self, agent_id: str, endpoint: str, mode: str = "listen") -> Any:
        return await self._do("supervise", agent_id, endpoint, mode)

    async def stop_supervision(self, agent_id: str, session_id: str) -> Any:
        return await self._do("stop_supervision", agent_id, session_id)


class FakeActions:
    def __init__(self) -> None:
        self.originated: list[dict[str, Any]] = []
        self.hung_up: list[uuid.UUID] = []

    async def originate(self, *, number: str, agent_id: str | None, endpoint: str | None, caller_id: str | None,
                        variables: Mapping[str, str], timeout: float) -> uuid.UUID:
        self.originated.append({"number": number, "agent_id": agent_id, "endpoint": endpoint})
        return CALL2

    async def hangup(self, call_id: uuid.UUID, *, reason: str) -> None:
        if call_id == UNKNOWN_CALL:
            raise NotFound(f"call {call_id} is not live")
        self.hung_up.append(call_id)


@dataclass
class World:
    acd: FakeAcd
    registry: FakeRegistry
    store: FakeStore
    conversations: FakeConversations
    actions: FakeActions
    sink: Sink

    def services(self) -> ApiServices:
        return ApiServices(acd=self.acd, calls=self.registry, store=self.store, conversations=self.conversations,
                           actions=self.actions, sink=self.sink)


def world() -> World:
    sink = Sink()
    w = World(FakeAcd(sink=sink), FakeRegistry(), FakeStore(), FakeConversations(), FakeActions(), sink)
    w.store.rows[CALL1] = {"call_id": CALL1, "direction": "inbound", "did": "1000", "caller_number": "0612345678",
                           "variables": {"lang": "nl"}, "updated_at": "x"}
    return w


def static_tokens() -> StaticTokens:
    return StaticTokens((name, role, agent, hash_token(token)) for name, (token, role, agent) in TOKENS.items())


class Api:
    """A TestClient whose requests carry a principal's token (``as_=None``: no token)."""

    def __init__(self, client: TestClient, w: World, metrics: Metrics, idem: IdempotencyStore) -> None:
        self.client = client
        self.world = w
        self.metrics = metrics
        self.idem = idem

    async def call(self, method: str, path: str, as_: str | None = "admin", *, json: Any = None,
                   data: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
        hdrs = dict(headers or {})
        if as_ is not None:
            hdrs["Authorization"] = f"Bearer {TOKENS[as_][0]}"
        kwargs: dict[str, Any] = {"headers": hdrs}
        if json is not None:
            kwargs["json"] = json
        if data is not None:
            kwargs["data"] = data
        async with self.client.request(method, path, **kwargs) as resp:
            text = await resp.text()
            body: Any = text
            if resp.content_type == "application/json":
                body = await resp.json()
            return resp.status, body, resp.headers


async def start_api(w: World | None = None, *, idem: IdempotencyStore | None = None,
                    ready_checks: dict[str, Any] | None = None, max_body_bytes: int = 4096,
                    stores: list[Any] | None = None, services: ApiServices | None = None) -> Api:
    w = w or world()
    metrics = Metrics()
    idem = idem if idem is not None else MemoryIdempotencyStore()
    app = create_app(services or w.services(), authenticator=Authenticator(stores or [static_tokens()]), idempotency=idem,
                     metrics=metrics, ready_checks=ready_checks, max_body_bytes=max_body_bytes)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    return Api(client, w, metrics, idem)
