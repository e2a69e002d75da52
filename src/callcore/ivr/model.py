"""IVR flows and schedules as admins write them in YAML, validated strictly (pydantic, ``extra="forbid"``).

What pydantic checks here is everything local to one value: node fields and types, time zones, time ranges,
regular expressions, URLs. Cross-references (node targets, schedules, reachability, sounds, cycles without input)
are checked by ``callcore.ivr.validate``, which needs the whole config.

``IvrConfig`` (alias ``FlowSet``) is the container the stepper receives: ``flows`` + ``schedules``.

Node kinds are told apart by ``type``. The union uses a callable discriminator whose tags start with
``function-``: ``callcore.config.loader.validate`` drops such parts from error locations, so an error inside a
node reads ``flows.main.nodes.welcome.sounds`` rather than ``flows.main.nodes.welcome.play.sounds``.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal, NamedTuple, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Tag,
    field_validator,
    model_validator,
)

# Variables every flow can read but never set.
BUILTIN_VARIABLES = ("caller_number", "did", "flow")
DTMF_KEYS = frozenset("0123456789*#")
DEFAULT_TRANSFER_ENDPOINT = "PJSIP/{number}@trunk"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = date.weekday()

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RANGE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


# ---- value helpers -----------------------------------------------------------------------------------------


def _scalar_to_str(v: Any) -> Any:
    """YAML turns ``priority: 10`` into an int and ``on: yes`` into a bool; variables are strings."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return v


def _check_timezone(v: str) -> str:
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {v!r} (use an IANA name such as Europe/Amsterdam or UTC)") from None
    return v


def _check_regex(v: str) -> str:
    try:
        re.compile(v)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {v!r}: {exc}") from None
    return v


def _check_identifier(v: str) -> str:
    if not _IDENT.match(v):
        raise ValueError(f"{v!r} is not a valid variable name (letters, digits and '_', not starting with a digit)")
    return v


class Minutes(NamedTuple):
    """A local wall-clock range in minutes since midnight; ``end`` may be 1440 (24:00). start < end."""

    start: int
    end: int


def parse_range(text: str) -> Minutes:
    """``"08:00-18:00"`` → ``Minutes(480, 1080)``. Raises ValueError with an admin-readable message."""
    m = _RANGE.match(text) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"time range {text!r} must look like HH:MM-HH:MM, e.g. 08:00-18:00")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    for h, mi in ((h1, m1), (h2, m2)):
        if mi > 59 or h > 24 or (h == 24 and mi != 0):
            raise ValueError(f"time range {text!r}: {h:02d}:{mi:02d} is not a time of day (00:00-24:00)")
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if end <= start:
        raise ValueError(f"time range {text!r}: the end must be after the start (ranges do not cross midnight)")
    return Minutes(start, end)


def _check_range(v: str) -> str:
    parse_range(v)
    return v


Str = Annotated[str, BeforeValidator(_scalar_to_str)]
TimeZoneName = Annotated[str, AfterValidator(_check_timezone)]
Regex = Annotated[str, AfterValidator(_check_regex)]
TimeRange = Annotated[str, AfterValidator(_check_range)]
Identifier = Annotated[str, AfterValidator(_check_identifier)]
Media = list[Str]  # media items: "callcore/welcome", "digits:${account}", ...
NodeName = Str


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# ---- schedules -----------------------------------------------------------------------------------------------


class Weekly(_Model):
    """Opening ranges per weekday; an absent day is closed all day."""

    mon: list[TimeRange] = Field(default_factory=list)
    tue: list[TimeRange] = Field(default_factory=list)
    wed: list[TimeRange] = Field(default_factory=list)
    thu: list[TimeRange] = Field(default_factory=list)
    fri: list[TimeRange] = Field(default_factory=list)
    sat: list[TimeRange] = Field(default_factory=list)
    sun: list[TimeRange] = Field(default_factory=list)

    def ranges(self, weekday: int) -> list[Minutes]:
        """Parsed ranges of ``weekday`` (0 = Monday, like ``date.weekday()``), sorted by start."""
        return sorted(parse_range(r) for r in getattr(self, WEEKDAYS[weekday]))


class Schedule(_Model):
    timezone: TimeZoneName
    weekly: Weekly = Field(default_factory=Weekly)
    holidays: list[date] = Field(default_factory=list, description="local dates closed all day (holiday branch)")

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


# ---- nodes ---------------------------------------------------------------------------------------------------


class Edge(NamedTuple):
    """One outgoing transition of a node: ``label`` (e.g. ``option:1``), ``target`` node, ``loc`` = YAML path
    of the field holding the target, relative to the node (e.g. ``("options", "1")``)."""

    label: str
    target: str
    loc: tuple[str | int, ...]


class _Node(_Model):
    description: str = ""

    def edges(self) -> list[Edge]:
        return []

    def media_fields(self) -> dict[str, list[str]]:
        """Field name → media list, for sound checks."""
        return {}

    def assigned_variables(self) -> list[tuple[str, tuple[str | int, ...]]]:
        """Variables this node sets, with the YAML path of each (relative to the node)."""
        return []

    @property
    def kind(self) -> str:
        return self.type  # type: ignore[attr-defined,no-any-return]

    @property
    def is_instant(self) -> bool:
        """Instant nodes do not talk to the caller: the stepper evaluates them and moves on in the same step."""
        return False

    @property
    def is_terminal(self) -> bool:
        return False


class PlayNode(_Node):
    type: Literal["play"]
    sounds: Media = Field(min_length=1)
    interruptible: bool = False
    next: NodeName

    def edges(self) -> list[Edge]:
        return [Edge("next", self.next, ("next",))]

    def media_fields(self) -> dict[str, list[str]]:
        return {"sounds": self.sounds}


class MenuNode(_Node):
    type: Literal["menu"]
    prompt: Media = Field(default_factory=list)
    options: dict[Str, NodeName] = Field(min_length=1, description="one DTMF key (0-9 * #) → node")
    timeout: float = Field(5.0, gt=0, le=120)
    retries: int = Field(3, ge=1, le=20, description="total attempts")
    timeout_prompt: Media = Field(default_factory=list)
    invalid_prompt: Media = Field(default_factory=list)
    on_failure: NodeName
    barge_in: bool = True

    def edges(self) -> list[Edge]:
        out = [Edge(f"option:{k}", v, ("options", k)) for k, v in self.options.items()]
        out.append(Edge("on_failure", self.on_failure, ("on_failure",)))
        return out

    def media_fields(self) -> dict[str, list[str]]:
        return {"prompt": self.prompt, "timeout_prompt": self.timeout_prompt, "invalid_prompt": self.invalid_prompt}


class CollectNode(_Node):
    type: Literal["collect"]
    prompt: Media = Field(default_factory=list)
    variable: Identifier
    min_digits: int = Field(1, ge=0, le=64)
    max_digits: int = Field(ge=1, le=64)
    terminator: Literal["#", "*", ""] = "#"
    first_timeout: float = Field(5.0, gt=0, le=120)
    inter_timeout: float = Field(3.0, gt=0, le=120)
    pattern: Regex | None = Field(None, description="the digits must fully match it")
    retries: int = Field(3, ge=1, le=20)
    timeout_prompt: Media = Field(default_factory=list)
    invalid_prompt: Media = Field(default_factory=list)
    barge_in: bool = True
    confirm: bool = False
    confirm_prompt: Media = Field(default_factory=list)
    confirm_options_prompt: Media = Field(default_factory=list)
    next: NodeName
    on_failure: NodeName

    @model_validator(mode="after")
    def _digits(self) -> CollectNode:
        if self.min_digits > self.max_digits:
            raise ValueError(f"min_digits ({self.min_digits}) is larger than max_digits ({self.max_digits})")
        return self

    def edges(self) -> list[Edge]:
        return [Edge("next", self.next, ("next",)), Edge("on_failure", self.on_failure, ("on_failure",))]

    def media_fields(self) -> dict[str, list[str]]:
        return {
            "prompt": self.prompt,
            "timeout_prompt": self.timeout_prompt,
            "invalid_prompt": self.invalid_prompt,
            "confirm_prompt": self.confirm_prompt,
            "confirm_options_prompt": self.confirm_options_prompt,
        }

    def assigned_variables(self) -> list[tuple[str, tuple[str | int, ...]]]:
        return [(self.variable, ("variable",))]


class LookupNode(_Node):
    type: Literal["lookup"]
    method: Literal["GET", "POST"] = "GET"
    url: str
    params: dict[str, Str] = Field(default_factory=dict)
    headers: dict[str, Str] = Field(default_factory=dict)
    timeout: float = Field(2.0, gt=0, le=10)
    map: dict[Identifier, str] = Field(default_factory=dict, description="variable ← dotted path into the JSON")
    next: NodeName
    on_error: NodeName

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://\S+$", v):
            raise ValueError("must be an http(s) URL such as http://127.0.0.1:9000/customers")
        return v

    @field_validator("map")
    @classmethod
    def _paths(cls, v: dict[str, str]) -> dict[str, str]:
        for var, path in v.items():
            if not path or any(not part for part in path.split(".")):
                raise ValueError(f"{var}: {path!r} is not a dotted path such as account.open_balance")
        return v

    def edges(self) -> list[Edge]:
        return [Edge("ok", self.next, ("next",)), Edge("error", self.on_error, ("on_error",))]

    def assigned_variables(self) -> list[tuple[str, tuple[str | int, ...]]]:
        return [(k, ("map", k)) for k in self.map]


class Rule(_Model):
    """One branch rule. Every condition given must hold (usually one is given).

    ``variable`` with exactly one of ``equals`` / ``in`` / ``matches``; ``caller_number`` and ``did`` are
    regular expressions searched in the caller's number / the dialed number (anchor them with ``^``/``$``);
    ``time`` is a local time window, in ``schedule``'s time zone or else the flow's ``timezone``."""

    variable: str | None = None
    equals: Str | None = None
    in_: list[Str] | None = Field(None, alias="in")
    matches: Regex | None = None
    caller_number: Regex | None = None
    did: Regex | None = None
    time: TimeRange | None = None
    schedule: str | None = None
    next: NodeName

    @model_validator(mode="after")
    def _conditions(self) -> Rule:
        tests = [x for x in (self.equals, self.in_, self.matches) if x is not None]
        if self.variable is not None and len(tests) != 1:
            raise ValueError("a rule on 'variable' needs exactly one of 'equals', 'in', 'matches'")
        if self.variable is None and tests:
            raise ValueError("'equals', 'in' and 'matches' need a 'variable'")
        if self.schedule is not None and self.time is None:
            raise ValueError("'schedule' only goes with 'time'")
        if self.variable is None and self.caller_number is None and self.did is None and self.time is None:
            raise ValueError("a rule needs a condition: variable, caller_number, did or time")
        return self


class BranchNode(_Node):
    type: Literal["branch"]
    rules: list[Rule] = Field(default_factory=list)
    default: NodeName

    def edges(self) -> list[Edge]:
        out = [Edge(f"rule:{i}", r.next, ("rules", i, "next")) for i, r in enumerate(self.rules)]
        out.append(Edge("default", self.default, ("default",)))
        return out

    @property
    def is_instant(self) -> bool:
        return True


class HoursNode(_Node):
    type: Literal["hours"]
    schedule: str
    open: NodeName
    closed: NodeName
    holiday: NodeName | None = Field(None, description="absent: holidays take the 'closed' branch")

    def edges(self) -> list[Edge]:
        out = [Edge("open", self.open, ("open",)), Edge("closed", self.closed, ("closed",))]
        if self.holiday is not None:
            out.append(Edge("holiday", self.holiday, ("holiday",)))
        return out

    @property
    def is_instant(self) -> bool:
        return True


class SetNode(_Node):
    type: Literal["set"]
    variables: dict[Identifier, Str] = Field(min_length=1)
    next: NodeName

    def edges(self) -> list[Edge]:
        return [Edge("next", self.next, ("next",))]

    def assigned_variables(self) -> list[tuple[str, tuple[str | int, ...]]]:
        return [(k, ("variables", k)) for k in self.variables]

    @property
    def is_instant(self) -> bool:
        return True


class QueueNode(_Node):
    type: Literal["queue"]
    queue: str
    priority: Str = "0"  # an int, or "${var}" (interpolated; not an int → 0)
    skills: list[Str] = Field(default_factory=list)
    endpoint: str | None = None
    ring_timeout: float = Field(30.0, gt=0, le=600)

    @property
    def is_terminal(self) -> bool:
        return True


class TransferNode(_Node):
    type: Literal["transfer"]
    number: Str
    caller_id: Str | None = None
    endpoint: str = Field(DEFAULT_TRANSFER_ENDPOINT, description="'{number}' is replaced by the number")
    ring_timeout: float = Field(30.0, gt=0, le=600)

    @property
    def is_terminal(self) -> bool:
        return True


class RecordNode(_Node):
    type: Literal["record"]
    prompt: Media = Field(default_factory=list)
    max_seconds: int = Field(60, ge=1, le=3600)
    max_silence_seconds: int = Field(5, ge=1, le=300)
    beep: bool = True
    variable: Identifier | None = Field(None, description="set to the recording name when it succeeded")
    next: NodeName

    def edges(self) -> list[Edge]:
        return [Edge("next", self.next, ("next",))]

    def media_fields(self) -> dict[str, list[str]]:
        return {"prompt": self.prompt}

    def assigned_variables(self) -> list[tuple[str, tuple[str | int, ...]]]:
        return [(self.variable, ("variable",))] if self.variable else []


class CallbackNode(_Node):
    """Record a callback request for ``number`` (by default the presented caller number), after the callback
    number policy allowed it (``callbacks:``: toll fraud, do-not-call). Refused: ``refused_prompt`` tells the
    caller, then ``on_refused`` (default ``next``)."""

    type: Literal["callback"]
    number: Str = "${caller_number}"
    queue: str
    prompt: Media = Field(default_factory=list)
    refused_prompt: Media = Field(default_factory=lambda: ["callcore/callback-refused"])
    next: NodeName
    on_refused: NodeName | None = None

    def edges(self) -> list[Edge]:
        edges = [Edge("next", self.next, ("next",))]
        if self.on_refused is not None:
            edges.append(Edge("refused", self.on_refused, ("on_refused",)))
        return edges

    def media_fields(self) -> dict[str, list[str]]:
        return {"prompt": self.prompt, "refused_prompt": self.refused_prompt}

    @property
    def is_instant(self) -> bool:
        return False  # the number check is a command (the do-not-call list is a lookup)


class HangupNode(_Node):
    type: Literal["hangup"]
    sounds: Media = Field(default_factory=list)

    def media_fields(self) -> dict[str, list[str]]:
        return {"sounds": self.sounds}

    @property
    def is_terminal(self) -> bool:
        return True


_NODE_CLASSES: dict[str, type[_Node]] = {
    "play": PlayNode,
    "menu": MenuNode,
    "collect": CollectNode,
    "lookup": LookupNode,
    "branch": BranchNode,
    "hours": HoursNode,
    "set": SetNode,
    "queue": QueueNode,
    "transfer": TransferNode,
    "record": RecordNode,
    "callback": CallbackNode,
    "hangup": HangupNode,
}
NODE_TYPES = tuple(_NODE_CLASSES)


def _node_tag(v: Any) -> str | None:
    kind = v.get("type") if isinstance(v, dict) else getattr(v, "type", None)
    return f"function-{kind}" if isinstance(kind, str) and kind in _NODE_CLASSES else None


Node = Annotated[
    Union[
        Annotated[PlayNode, Tag("function-play")],
        Annotated[MenuNode, Tag("function-menu")],
        Annotated[CollectNode, Tag("function-collect")],
        Annotated[LookupNode, Tag("function-lookup")],
        Annotated[BranchNode, Tag("function-branch")],
        Annotated[HoursNode, Tag("function-hours")],
        Annotated[SetNode, Tag("function-set")],
        Annotated[QueueNode, Tag("function-queue")],
        Annotated[TransferNode, Tag("function-transfer")],
        Annotated[RecordNode, Tag("function-record")],
        Annotated[CallbackNode, Tag("function-callback")],
        Annotated[HangupNode, Tag("function-hangup")],
    ],
    Discriminator(
        _node_tag,
        custom_error_type="node_type",
        custom_error_message="missing or unknown node 'type' (one of: " + ", ".join(_NODE_CLASSES) + ")",
        custom_error_context={},
    ),
]


# ---- flows ---------------------------------------------------------------------------------------------------


class Flow(_Model):
    language: str = Field("en", min_length=1, description="Asterisk language of the prompts")
    language_variable: Identifier | None = Field(None, description="a call variable overriding the language")
    timezone: TimeZoneName = Field("UTC", description="for branch 'time' rules without a schedule")
    start: str
    resume_at: str | None = Field(
        None, description="where a caller who was in this flow restarts after a callcore restart (a safe node: "
                          "the main menu rather than the welcome); default: start")
    nodes: dict[str, Node] = Field(min_length=1)

    _name: str = PrivateAttr("")

    @property
    def name(self) -> str:
        """The key of this flow in ``IvrConfig.flows`` (set when the IvrConfig is built; "" for a loose Flow)."""
        return self._name


class IvrConfig(_Model):
    """Everything the IVR needs: ``flows`` and the ``schedules`` they refer to."""

    flows: dict[str, Flow] = Field(default_factory=dict)
    schedules: dict[str, Schedule] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _name_flows(self) -> IvrConfig:
        for name, flow in self.flows.items():
            flow._name = name
        return self


FlowSet = IvrConfig

__all__ = [
    "BUILTIN_VARIABLES",
    "DEFAULT_TRANSFER_ENDPOINT",
    "DTMF_KEYS",
    "NODE_TYPES",
    "BranchNode",
    "CallbackNode",
    "CollectNode",
    "Edge",
    "Flow",
    "FlowSet",
    "HangupNode",
    "HoursNode",
    "IvrConfig",
    "LookupNode",
    "MenuNode",
    "Minutes",
    "Node",
    "PlayNode",
    "QueueNode",
    "RecordNode",
    "Rule",
    "Schedule",
    "SetNode",
    "TransferNode",
    "Weekly",
    "parse_range",
]
