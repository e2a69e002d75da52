"""The shipped Asterisk configuration (asterisk/) is safe to expose: no guest calls, ACLs on every way in, agent
phones that authenticate, and SIP contexts that cannot reach the phone network (docs/security.md, "Toll fraud").

These read the files only; the integration suite checks that the sandbox still works with them."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from callcore.sandbox import default_config_dir
from callcore.sandbox.asterisk import config_files

CONF = default_config_dir()
SIP_CONTEXTS = {"from-trunk", "from-agents", "from-nodes"}
AGENTS = [f"agent{n:02d}" for n in range(1, 21)]


# ---------------------------------------------------------------- a small reader of Asterisk's config syntax


@dataclass
class Section:
    name: str
    options: list[tuple[str, str]] = field(default_factory=list)

    def get(self, key: str) -> list[str]:
        return [v for k, v in self.options if k == key]

    def one(self, key: str) -> str:
        found = self.get(key)
        assert len(found) == 1, f"[{self.name}] {key}: {found}"
        return found[0]

    @property
    def type(self) -> str:
        return self.one("type")


def _lines(files: dict[str, Path], name: str) -> list[str]:
    """The file's lines without comments, with `#include`d files (same directory, node overrides) spliced in."""
    out: list[str] = []
    for raw in files[name].read_text().splitlines():
        line = raw.split(";", 1)[0].strip()
        if line.startswith("#include"):
            out.extend(_lines(files, line.split(None, 1)[1].strip().strip('"')))
        elif line:
            out.append(line)
    return out


def read_conf(name: str, node: str | None = None) -> list[Section]:
    """Sections in order, templates resolved: `[x](!)` is a template (not returned), `[x](t1,t2)` inherits."""
    files = config_files(CONF, node)
    templates: dict[str, Section] = {}
    sections: list[Section] = []
    current: Section | None = None
    for line in _lines(files, name):
        m = re.fullmatch(r"\[([^\]]+)\](?:\(([^)]*)\))?", line)
        if m:
            current = Section(m.group(1))
            marks = [p.strip() for p in (m.group(2) or "").split(",") if p.strip()]
            for mark in marks:
                if mark != "!":
                    assert mark in templates, f"{name}: [{current.name}] uses unknown template {mark}"
                    current.options.extend(templates[mark].options)
            if "!" in marks:
                templates[current.name] = current
            else:
                sections.append(current)
            continue
        assert current is not None, f"{name}: {line!r} outside a section"
        key, sep, value = line.partition("=")
        assert sep, f"{name}: not key = value: {line!r}"
        current.options.append((key.strip(), value.lstrip(">").strip()))
    return sections


def pjsip(node: str | None = None) -> list[Section]:
    return read_conf("pjsip.conf", node)


def of_type(sections: list[Section], kind: str) -> dict[str, Section]:
    return {s.name: s for s in sections if s.get("type") == [kind]}


def acl_lists() -> dict[str, Section]:
    return {s.name: s for s in read_conf("acl.conf")}


def networks(section: Section, key: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(v, strict=False) for v in section.get(key)]


# ---------------------------------------------------------------- no guest calls


@pytest.mark.parametrize("node", [None, "b"])
def test_no_anonymous_or_guest_endpoint(node):
    sections = pjsip(node)
    endpoints = of_type(sections, "endpoint")
    assert endpoints, "no endpoint parsed"
    for name, ep in endpoints.items():
        assert name.split("@")[0] not in {"anonymous", "default_outbound_endpoint"}, name
        assert ep.get("context") and ep.one("context") in SIP_CONTEXTS, f"{name}: context {ep.get('context')}"
        assert ep.get("allow_unauthenticated_options") in ([], ["no"]), name
    everything = "\n".join("\n".join(_lines(config_files(CONF, node), n)) for n in config_files(CONF, node))
    assert not re.search(r"^\s*allowguest\s*=", everything, re.M | re.I)
    assert "[default]" not in _lines(config_files(CONF, node), "extensions.conf")


def test_the_anonymous_identifier_never_loads():
    modules = _lines(config_files(CONF), "modules.conf")
    assert "autoload = no" in modules
    assert not [m for m in modules if m.startswith("load") and "identifier_anonymous" in m]
    assert "noload => res_pjsip_endpoint_identifier_anonymous.so" in modules
    for needed in ("res_pjsip_acl.so", "res_pjsip_authenticator_digest.so", "res_security_log.so"):
        assert f"load => {needed}" in modules, needed


def test_security_events_are_logged_for_fail2ban():
    assert "security.log => security" in _lines(config_files(CONF), "logger.conf")


def test_identification_never_trusts_a_from_header_alone():
    (glob,) = of_type(pjsip(), "global").values()
    order = [m.strip() for m in glob.one("endpoint_identifier_order").split(",")]
    assert order.index("username") < order.index("ip"), "an agent's request on loopback must not become the trunk's"
    assert "auth_username" in order


# ---------------------------------------------------------------- addresses


def test_every_acl_list_denies_everything_first_then_permits_loopback_only_in_the_sandbox():
    lists = acl_lists()
    assert set(lists) >= {"callcore-carrier", "callcore-phones", "callcore-nodes", "callcore-sip"}
    for name, acl in lists.items():
        rules = [k for k, _ in acl.options]
        assert rules[:2] == ["deny", "deny"] and set(rules[2:]) == {"permit"}, f"{name}: {acl.options}"
        assert {str(n) for n in networks(acl, "deny")} == {"0.0.0.0/0", "::/0"}, name
        permits = networks(acl, "permit")
        assert permits and all(n.subnet_of(ipaddress.ip_network("127.0.0.0/8")) for n in permits), name
    union = set().union(*(networks(lists[n], "permit") for n in ("callcore-carrier", "callcore-phones",
                                                                  "callcore-nodes")))
    assert union <= set(networks(lists["callcore-sip"], "permit")), "callcore-sip must permit every list's addresses"


@pytest.mark.parametrize("node", [None, "b"])
def test_every_request_passes_the_global_acl_and_every_acl_name_exists(node):
    sections = pjsip(node)
    acls = of_type(sections, "acl")
    assert [a.get("acl") for a in acls.values()] == [["callcore-sip"]], "one global ACL: acl.conf's callcore-sip"
    lists = acl_lists()
    for s in sections:
        for ref in s.get("acl") + s.get("contact_acl"):
            for name in ref.split(","):
                assert name.strip() in lists, f"[{s.name}] refers to {name!r}, which acl.conf lacks (rejects all)"
    for s in sections:
        assert not s.get("permit") and not s.get("deny"), f"[{s.name}]: keep addresses in acl.conf"


@pytest.mark.parametrize("node", [None, "b"])
def test_the_trunk_is_known_by_address_only_and_only_from_the_carrier(node):
    sections = pjsip(node)
    trunk = of_type(sections, "endpoint")["trunk"]
    assert trunk.one("context") == "from-trunk"
    assert trunk.one("identify_by") == "ip", "a From: <sip:trunk@…> must not be taken for the carrier"
    assert trunk.one("acl") == "callcore-carrier"
    identify = of_type(sections, "identify")["trunk"]
    assert identify.one("endpoint") == "trunk"
    carrier = networks(acl_lists()["callcore-carrier"], "permit")
    for match in identify.one("match").split(","):
        net = ipaddress.ip_network(match.strip(), strict=False)
        assert any(net.subnet_of(c) for c in carrier if c.version == net.version), f"{net} not in callcore-carrier"


# ---------------------------------------------------------------- agent phones


@pytest.mark.parametrize("node", [None, "b"])
def test_agent_phones_authenticate_each_with_its_own_password(node):
    sections = pjsip(node)
    endpoints, auths, aors = of_type(sections, "endpoint"), of_type(sections, "auth"), of_type(sections, "aor")
    passwords = set()
    for agent in AGENTS:
        ep = endpoints[agent]
        assert ep.one("context") == "from-agents"
        assert ep.one("auth") == f"{agent}-auth"
        methods = {m.strip() for m in ep.one("identify_by").split(",")}
        assert methods <= {"username", "auth_username"}, f"{agent}: never by address ({methods})"
        assert ep.one("acl") == "callcore-phones"
        assert not ep.get("allow_unauthenticated_options") or ep.one("allow_unauthenticated_options") == "no"
        auth = auths[f"{agent}-auth"]
        assert auth.one("username") == agent and auth.get("auth_type") in ([], ["digest"])
        passwords.add(auth.one("password"))
        # the sandbox's phones are called by Asterisk (static contacts), which needs no password
        assert aors[agent].one("contact") == f"sip:{agent}@127.0.0.1:{6100 + int(agent[5:])}"
    assert len(passwords) == len(AGENTS) and all(len(p) >= 12 for p in passwords)
    assert not [s.name for s in auths.values() if s.name not in {f"{a}-auth" for a in AGENTS}], "stray auth"


def test_the_sandbox_passwords_are_the_only_ones_install_sh_replaces():
    text = (CONF / "pjsip_auth.conf").read_text()
    lines = [line for line in text.splitlines() if line.startswith("password")]
    assert len(lines) == len(AGENTS) and all(re.fullmatch(r"password = sandbox-agent\d\d", x) for x in lines)
    ari = [line for line in (CONF / "ari.conf").read_text().splitlines() if line.startswith("password")]
    assert ari == ["password = callcore-sandbox", "password_format = plain"]


# ---------------------------------------------------------------- the other nodes


@pytest.mark.parametrize("node,peer", [(None, "node-b"), ("b", "node-main")])
def test_the_trunks_between_nodes_accept_only_the_sites_nodes(node, peer):
    ep = of_type(pjsip(node), "endpoint")[peer]
    assert ep.one("context") == "from-nodes"
    assert ep.one("acl") == "callcore-nodes"
    assert ep.one("identify_by") == "username"  # loopback: all nodes send from 127.0.0.1 (the ACL holds the rest)
    assert not ep.get("auth")


# ---------------------------------------------------------------- the dialplan


def dialplan() -> dict[str, list[tuple[str, str, str]]]:
    """context → [(extension, application, arguments)] of extensions.conf (`same =>` lines kept with theirs)."""
    contexts: dict[str, list[tuple[str, str, str]]] = {}
    current = exten = ""
    for line in _lines(config_files(CONF), "extensions.conf"):
        if m := re.fullmatch(r"\[([^\]]+)\]", line):
            current = m.group(1)
            contexts.setdefault(current, [])
            continue
        key, _, value = line.partition("=>")
        key = key.strip()
        if key == "include":
            contexts[current].append(("", "include", value.strip()))
            continue
        if key not in ("exten", "same"):
            continue
        parts = value.strip().split(",", 2 if key == "exten" else 1)
        if key == "exten":
            exten = parts[0]
        step = parts[-1]
        app, _, args = step.partition("(")
        contexts[current].append((exten, app.strip(), args.rsplit(")", 1)[0]))
    return contexts


def targets(app: str, args: str) -> set[str]:
    """Contexts a Goto/GotoIf/Gosub/include may continue in (a label alone stays in its own context)."""
    if app == "include":
        return {args}
    if app not in ("Goto", "GotoIf", "Gosub", "GosubIf"):
        return set()
    branches = args.split("?", 1)[1].split(":") if "?" in args else [args]
    return {b.split(",")[0] for b in branches if b.count(",") == 2}


def reachable(start: str, plan: dict[str, list[tuple[str, str, str]]]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        ctx = todo.pop()
        if ctx in seen:
            continue
        assert ctx in plan, f"{ctx} is reached but not defined"
        seen.add(ctx)
        for _, app, args in plan[ctx]:
            todo.extend(targets(app, args))
    return seen


def test_sip_contexts_are_exactly_the_endpoints_contexts():
    used = {ep.one("context") for node in (None, "b") for ep in of_type(pjsip(node), "endpoint").values()}
    assert used == SIP_CONTEXTS and SIP_CONTEXTS <= set(dialplan())


def test_the_trunk_reaches_only_callcore_and_the_apology():
    plan = dialplan()
    assert reachable("from-trunk", plan) == {"from-trunk", "callcore-fallback"}
    apps = {app for ctx in ("from-trunk", "callcore-fallback") for _, app, _ in plan[ctx]}
    assert apps <= {"Stasis", "Goto", "Hangup", "Progress", "Playback", "Queue"}, apps
    # the one exception: DID 9000, the benchmarks' app_queue baseline, which rings agent phones only
    assert [args for _, app, args in plan["from-trunk"] if app == "Queue"] == ["bench-appqueue"]
    members = [v for s in read_conf("queues.conf") if s.name == "bench-appqueue" for v in s.get("member")]
    assert members == [f"PJSIP/{a}" for a in AGENTS]


def test_agents_reach_nothing_dialable():
    plan = dialplan()
    assert reachable("from-agents", plan) == {"from-agents"}
    assert {app for _, app, _ in plan["from-agents"]} == {"Hangup"}


def test_other_nodes_reach_agent_phones_only():
    plan = dialplan()
    assert reachable("from-nodes", plan) == {"from-nodes"}
    steps = plan["from-nodes"]
    dials = [args for _, app, args in steps if app == "Dial"]
    assert dials == ["PJSIP/${FILTER(A-Za-z0-9_-,${EXTEN})}"], "a bare endpoint: no @trunk, no URI, no other node"
    guard = next(args for _, app, args in steps if app == "GotoIf")
    assert 'PJSIP_ENDPOINT(${FILTER(A-Za-z0-9_-,${EXTEN})},context)}" = "from-agents"' in guard
    assert [app for _, app, _ in steps].index("GotoIf") < [app for _, app, _ in steps].index("Dial")


def test_no_sip_context_dials_the_trunk_or_another_node():
    plan = dialplan()
    for start in SIP_CONTEXTS:
        for ctx in reachable(start, plan):
            for _, app, args in plan[ctx]:
                if app == "Dial":
                    assert "@" not in args, f"{ctx}: Dial({args})"


# ---------------------------------------------------------------- ARI


@pytest.mark.parametrize("node", [None, "b"])
def test_ari_is_on_loopback_with_no_browser_origins(node):
    files = config_files(CONF, node)
    assert "bindaddr = 127.0.0.1" in _lines(files, "http.conf")
    assert not [line for line in _lines(files, "http.conf") if line.startswith("tls")]
    (general,) = [s for s in read_conf("ari.conf", node) if s.name == "general"]
    assert general.one("allowed_origins") == ""
    users = [s for s in read_conf("ari.conf", node) if s.get("type") == ["user"]]
    assert [u.name for u in users] == ["callcore"]
    assert "enabled = no" in _lines(files, "manager.conf")
