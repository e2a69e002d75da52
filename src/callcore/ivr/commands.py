"""The contract between the pure IVR stepper and the runner that talks to the caller.

The stepper (stepper.py) never does I/O: it answers "what must happen to the caller now?" with one *command*.
The runner (runner.py) carries the command out on a live call and reports back one *result*. Analytics
events (``IvrEvent``) come with every step; the runner emits them as call events.

Media strings are Asterisk media URIs, already resolved by the stepper: ``sound:callcore/welcome``,
``digits:1234``, ``number:42``, ``recording:vm-123``, ``tone:busy``. ``language`` is the language Asterisk
plays them in (its sounds/<language>/ directory).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Union

# ---- commands: stepper -> runner --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Play:
    """Play media. If ``interruptible``, a digit stops it (barge-in) and is reported, not consumed:
    the following Collect sees it first."""

    media: tuple[str, ...]
    language: str
    interruptible: bool = False


@dataclass(frozen=True, slots=True)
class Collect:
    """Optionally play ``prompt`` (barge-in when ``barge_in``), then collect up to ``max_digits`` digits.

    Collection stops at ``max_digits``, at the ``terminator`` (not included; empty string = none), after
    ``first_timeout`` s without a first digit, or ``inter_timeout`` s between digits. Digits typed during the
    prompt count as input. ``flush`` drops type-ahead digits before the prompt (used after an invalid entry)."""

    prompt: tuple[str, ...]
    language: str
    max_digits: int
    terminator: str = ""
    first_timeout: float = 5.0
    inter_timeout: float = 3.0
    barge_in: bool = True
    flush: bool = False


@dataclass(frozen=True, slots=True)
class Lookup:
    """An HTTP request to an integrator (CRM). ``params`` go in the query string (GET) or as a JSON body
    (POST); values are already interpolated. The runner enforces ``timeout`` (seconds, whole request)."""

    method: Literal["GET", "POST"]
    url: str
    params: dict[str, str]
    timeout: float
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Record:
    """Play ``prompt``, beep if asked, record up to ``max_seconds`` (``#`` ends it) into recording ``name``."""

    prompt: tuple[str, ...]
    language: str
    name: str
    max_seconds: int
    beep: bool = True
    max_silence_seconds: int = 5


@dataclass(frozen=True, slots=True)
class CheckCallback:
    """Book a callback of ``number`` into ``queue``, if it may be called back: the runner asks the callback number
    policy (``callbacks:`` in the config: valid, allowed line type and prefixes, not premium-rate, not on the
    do-not-call list), then books it (``callcore.acd.callback_booking``) with ``context`` for the agent."""

    number: str
    queue: str = ""
    context: tuple[tuple[str, str], ...] = ()
    requested_by: str = ""


# Terminal commands: after them the IVR is over for this call.


@dataclass(frozen=True, slots=True)
class Queue:
    """Hand the caller to the ACD. ``endpoint`` (optional) is the interim path until the ACD exists: ring that
    Asterisk endpoint (e.g. PJSIP/agent01) and bridge the caller with it."""

    queue: str
    priority: int
    skills: tuple[str, ...]
    endpoint: str | None = None
    ring_timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class Transfer:
    """Send the caller to an external number through the trunk (e.g. PJSIP/+31201234567@trunk)."""

    endpoint: str
    caller_id: str | None = None
    ring_timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class Hangup:
    """Play ``media`` (a goodbye; may be empty), then hang up."""

    media: tuple[str, ...]
    language: str


Command = Union[Play, Collect, Lookup, Record, CheckCallback, Queue, Transfer, Hangup]
TERMINAL = (Queue, Transfer, Hangup)


# ---- results: runner -> stepper ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Played:
    digit: str | None = None  # the digit that interrupted it (still queued for the next Collect)


@dataclass(frozen=True, slots=True)
class Collected:
    digits: str  # may be empty
    timed_out: bool  # True when collection ended by a timeout rather than max_digits/terminator
    terminated: bool = False  # True when the terminator ended it


@dataclass(frozen=True, slots=True)
class LookupDone:
    ok: bool  # 2xx with a JSON object body
    status: int | None  # HTTP status; None when no response (timeout, refused)
    data: dict[str, Any] | None  # the decoded JSON object when ok
    latency_ms: float
    error: str | None = None  # "timeout", "connection refused", "bad json", "http 500", ...


@dataclass(frozen=True, slots=True)
class Recorded:
    name: str
    ok: bool
    duration_seconds: float | None = None


@dataclass(frozen=True, slots=True)
class CallbackChecked:
    allowed: bool
    number: str  # E.164 when allowed; as given when refused
    code: str | None = None  # invalid_number | destination_not_allowed | number_on_dnc | dnc_unavailable | ...
    reason: str | None = None
    callback_id: str | None = None  # the booked callback request


@dataclass(frozen=True, slots=True)
class Finished:
    """What a terminal command achieved (for the record; the stepper is done either way)."""

    outcome: str  # e.g. "queued", "bridged", "transferred", "no_answer", "hung_up"


Result = Union[Played, Collected, LookupDone, Recorded, CallbackChecked, Finished]


# ---- analytics -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IvrEvent:
    """One analytics fact; the runner stores it as call event ``type`` with ``data`` (+ flow, version)."""

    type: str
    data: dict[str, Any]


class IvrEventType:
    NODE_ENTERED = "ivr_node_entered"  # data: node, kind
    NODE_EXITED = "ivr_node_exited"  # data: node, kind, outcome, next
    INPUT = "ivr_input"  # data: node, digits (menu choice / collected digits), valid
    TIMEOUT = "ivr_timeout"  # data: node, attempt
    INVALID = "ivr_invalid"  # data: node, digits, attempt
    LOOKUP = "ivr_lookup"  # data: node, ok, status, latency_ms, error
    VARIABLES = "variables_set"  # data: {name: value}; also updates calls.variables
    CALLBACK_REQUESTED = "callback_requested"  # data: node, number (E.164), queue, context
    CALLBACK_REFUSED = "callback_refused"  # data: node, number (as presented), queue, code, reason
    RECORDING = "ivr_recording"  # data: node, name, ok, duration_seconds
    FLOW_STARTED = "ivr_started"  # data: flow, version, language
    FLOW_ENDED = "ivr_ended"  # data: flow, outcome (queue|transfer|hangup|error), node, queue
    SURVEY_STARTED = "survey_started"  # data: flow, queue, agent (the agent hung up first; the caller rates)
    SURVEY_RESULT = "survey_result"  # data: flow, queue, agent, score (1-5, null: no answer)


# A queue handler's outcome "survey:<flow>": the agent hung up first and the caller goes to that flow.
SURVEY_OUTCOME_PREFIX = "survey:"
# The call variables the post-call survey reads and writes (docs/ivr.md, docs/kpis.md).
CSAT_VARIABLE = "csat"
SURVEY_QUEUE_VARIABLE = "survey_queue"
SURVEY_AGENT_VARIABLE = "survey_agent"
