"""Composition root: wires the services together and owns their lifecycles (start order, stop order)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from callcore.acd.service import AcdService
from callcore.dialer.preview import PreviewDialer
from callcore.dialer.service import DialerService
from callcore.acd.callback_booking import CallbackBooker
from callcore.acd.callback_guard import CallbackGuard
from callcore.acd.click_to_call import ClickToCall
from callcore.acd.web_callbacks import WebCallbacks
from callcore.api.health import database_check
from callcore.campaigns.catalog import (
    CampaignCatalog,
    all_campaigns,
    conflict_message,
    conflicts,
    load_api_campaigns,
)
from callcore.api.config_routes import CONFIG_CONTROL, AppConfig
from callcore.api.status import STATUS_SOURCE
from callcore.ops.status import STATUS_FILE, StatusReporter, build_status
from callcore.api.outbound_services import (
    OUTBOUND,
    OutboundServices,
    PgCallbackQuota,
    PgDispositionSink,
    PgDncStore,
    PgLeadStore,
)
from callcore.api.live_events import EVENT_HUB, EventHub, TeeSink
from callcore.kpi.definitions import KpiSettings
from callcore.kpi.store import PgKpis
from callcore.store.leader import FENCED_EXIT, Leadership
from callcore.store.spool import DiskSpool
from callcore.webhooks.delivery import Deliverer
from callcore.webhooks.outbox import WebhookOutbox
from callcore.api.metrics import Metrics
from callcore.api.server import ApiServer
from callcore.api.services import ApiServices, PgCallStore
from callcore.ari.client import AriClient
from callcore.ari.errors import ApplicationReplaced, AriError
from callcore.ari.stream import Backoff
from callcore.calls.nodes import NodeLink, Nodes
from callcore.calls.runtime import CallRuntime, Handler
from callcore.config import CallcoreConfig, ConfigError, load_config
from callcore.events import utcnow
from callcore.ivr.lookup import LookupClient
from callcore.calls.call import Call
from callcore.ivr.commands import Queue
from callcore.ivr.registry import CODE_FLOWS, make_router
from callcore.ivr.runner import bridge_to_endpoint
from callcore.ivr.sounds import ari_sounds
from callcore.store import EmbeddedPostgres, EventWriter, create_pool, migrate
from callcore.store.queries import latest_agent_states

log = structlog.get_logger("callcore")


@dataclass
class Database:
    dsn: str
    embedded: EmbeddedPostgres | None = None
    started_here: bool = False  # this process started the embedded server (so it may stop it)


async def open_database(config: CallcoreConfig) -> Database:
    """The configured PostgreSQL, or the embedded one under state_dir when no URL is set (started if need be)."""
    if config.database.url is not None:
        return Database(config.database.url.get_secret_value())
    server = EmbeddedPostgres(config.state_dir / "pgdata")
    running = await asyncio.to_thread(server.is_running)
    await asyncio.to_thread(server.start)
    if not running:
        log.info("embedded PostgreSQL started", data_dir=str(server.data_dir))
    return Database(server.dsn, server, started_here=not running)


async def close_database(db: Database) -> None:
    """Stop the embedded server if this process started it. One that was already running — a live callcore's,
    found by a CLI command (report, migrate, token, leads) — is left alone: stopping it would stop the service."""
    if db.embedded is not None and db.started_here:
        await asyncio.to_thread(db.embedded.stop)


@dataclass
class ReloadResult:
    ok: bool
    version: str
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"ok": self.ok, "version": self.version, "errors": self.errors, "warnings": self.warnings,
                "at": utcnow().isoformat(), "pid": os.getpid()}


# Settings a reload cannot change in a running process (they are wired at start).
RESTART_ONLY = ("state_dir", "ari", "database", "event_store", "logging", "api", "webhooks")


class CallcoreApp:
    def __init__(self, config: CallcoreConfig, *, flows: dict[str, Handler] | None = None) -> None:
        self.config = config
        self._flows = flows
        self.lookups = LookupClient()
        self.links: list[NodeLink] = []
        self.stopped = asyncio.Event()
        self.fatal: BaseException | None = None

    async def start(self) -> None:
        self.started_at = utcnow()
        cfg = self.config
        self.db = await open_database(cfg)
        self.pool = await create_pool(self.db.dsn, min_size=cfg.database.pool_min, max_size=cfg.database.pool_max)
        applied = await migrate(self.pool)
        if applied:
            log.info("database migrated", versions=applied)
        self.leadership: Leadership | None = None
        if cfg.ha.enabled:
            # Standby until this instance holds the lock: only the leader reads agent states and talks to ARI.
            self.leadership = Leadership(self.db.dsn, poll=cfg.ha.poll_seconds)
            await self.leadership.acquire(on_lost=self._fence)
        # Webhooks: their outbox rows are written in the events' own transaction; the deliverer sends them.
        self.hub = EventHub()
        self.outbox = WebhookOutbox.for_config(cfg.webhooks)
        self.deliverer = Deliverer(self.pool, cfg.webhooks) if self.outbox is not None else None
        self.writer = EventWriter(
            self.pool,
            batch_max=cfg.event_store.batch_max,
            flush_interval=cfg.event_store.flush_interval_ms / 1000,
            buffer_max=cfg.event_store.buffer_max,
            outbox=self.outbox,
            on_commit=self.deliverer.notify if self.deliverer is not None else None,
            spool=DiskSpool(cfg.state_dir / "spool", max_bytes=cfg.event_store.spool_max_mb * 1024 * 1024),
            spool_after=cfg.event_store.spool_after_s,
        )
        await self.writer.start()
        if self.deliverer is not None:
            await self.deliverer.start()
        # Every event goes to the store and to the live stream (GET /events).
        self.sink = TeeSink(self.writer, self.hub)
        self.acd = AcdService(cfg.acd(), self.sink)
        self.acd.restore(await latest_agent_states(self.pool))
        for agent_id, agent in cfg.agents.items():
            if agent.login_at_start and self.acd.agents[agent_id].state == "logged_out":
                self.acd.login(agent_id)
        # Callback destinations (virtual hold, IVR callback nodes) pass the same toll-fraud policy and DNC check
        # as POST /callbacks.
        self.dnc = PgDncStore(self.pool)
        # Callbacks — "call me now", IVR callback nodes, overflows to a callback — are durable requests in the
        # queues' lines; the ones pending before a restart are put back once calls can be placed (below).
        self.web_callbacks = WebCallbacks(self.acd, db=self.pool)
        self.acd.callback_guard = CallbackGuard(cfg.callbacks, self.dnc)
        self.acd.callback_booker = CallbackBooker(self.acd.callback_guard, self.web_callbacks)
        router = make_router(cfg, self.lookups, code_flows=self._flows, queue_handler=self.queue_handler,
                             dnc=self.dnc, callbacks=self.web_callbacks)
        # One ARI connection and call runtime per Asterisk node; the services see them as one (calls.nodes).
        self.links = []
        for node in cfg.ari.all_nodes():
            ari = AriClient(node.url, node.username or cfg.ari.username,
                            (node.password or cfg.ari.password).get_secret_value(), cfg.ari.app,
                            request_timeout=cfg.ari.request_timeout)
            runtime = CallRuntime(ari, self.sink, router, on_handler_error=cfg.calls.on_handler_error,
                                  fallback_context=cfg.calls.fallback_context, config_version=cfg.version,
                                  subscribe_all=True, node=node.name)
            self.links.append(NodeLink.create(
                node.name, ari, runtime, heartbeat=cfg.ari.heartbeat,
                backoff=Backoff(initial=cfg.ari.reconnect_initial, maximum=cfg.ari.reconnect_max)))
        self.runtime = Nodes([link.runtime for link in self.links],
                             connected={link.name: link.connected for link in self.links})
        self.runtime.set_endpoint_homes(_endpoint_homes(cfg), cfg.ari.peer_dial)
        # The first node's client and stream: Asterisk's sound list, stored recordings, single-node callers.
        self.ari, self.stream = self.links[0].ari, self.links[0].stream
        self.streams = {link.name: link.stream for link in self.links}
        self.acd.runtime = self.runtime  # virtual-hold callbacks are calls the runtime places and owns
        self.runtime.resume = self.acd.resume_handler  # after a restart, bridged calls continue as they were
        await self.web_callbacks.restore()
        # The config file's campaigns plus those created through the API (PostgreSQL); a name in both is the
        # file's (the reload refuses such a file, but one edited while callcore was down can still have it).
        stored = await load_api_campaigns(self.pool)
        for name in conflicts(cfg.campaigns, stored):
            log.error("campaign defined in the config file and through the API; the file's is used",
                      campaign=name)
            del stored[name]
        self.dialer: DialerService | None = DialerService(
            all_campaigns(cfg.campaigns, stored), self.acd, self.runtime, self.pool)
        # Asterisk's sound list (learnt once ARI is up, again on each reload): API campaigns are checked against it
        # like the file's, so a mistyped compliance message is refused rather than silently never played.
        self.sounds: set[str] | None = None
        self.campaign_catalog = CampaignCatalog(self.pool, self.dialer, config_campaigns=lambda: self.config.campaigns,
                                                acd=lambda: self.acd.config, known_sounds=lambda: self.sounds,
                                                stored=stored, on_change=self._refresh_kpi_settings)
        self.preview = PreviewDialer(self.dialer) if self.dialer is not None else None
        for link in self.links:
            link.task = asyncio.get_running_loop().create_task(self._run_stream(link), name=f"ari-stream:{link.name}")
        self._sounds_task = asyncio.get_running_loop().create_task(self._learn_sounds(), name="ari-sounds")
        self.api: ApiServer | None = None
        if cfg.api.enabled:
            await self._start_api()
        log.info("callcore started", ari=[n.url for n in cfg.ari.all_nodes()], app=cfg.ari.app,
                 config_version=cfg.version)

    async def _start_api(self) -> None:
        """The HTTP control API: it calls the services; no telephony happens in it."""
        self.metrics = Metrics()
        self.click_to_call = ClickToCall(self.acd)
        self.kpis = PgKpis(self.pool, self._kpi_settings())  # its settings follow a reload and API campaigns
        services = ApiServices(acd=self.acd, calls=self.runtime, store=PgCallStore(self.pool), conversations=self.acd,
                               actions=self.click_to_call,
                               sink=self.sink, kpis=self.kpis)
        self.api = ApiServer.from_settings(self.config.api, services, self.pool, metrics=self.metrics, ready_checks={
            "ari": self.all_nodes_connected, "database": database_check(self.pool), "config": lambda: True})

        reconnects_seen = [0]

        def collect(m: Metrics) -> None:
            reconnects = sum(link.stream.stats.reconnects for link in self.links)
            for _ in range(reconnects - reconnects_seen[0]):
                m.ari_reconnected()
            reconnects_seen[0] = reconnects
            m.update_from_acd(self.acd)
            m.set_calls_in_progress(self.runtime.live_calls)
            m.set_event_writer_backlog(self.writer.stats.buffered)

        self.metrics.on_collect(collect)
        self.acd.offer_listeners.append(self.metrics.observe_routing_latency)
        self.api.app[EVENT_HUB] = self.hub
        self.api.app[STATUS_SOURCE] = lambda: build_status(self)
        self.api.app[CONFIG_CONTROL] = AppConfig(self)
        self.api.app[OUTBOUND] = OutboundServices(
            campaigns=self.dialer, leads=PgLeadStore(self.pool), dnc=self.dnc,
            dispositions=PgDispositionSink(self.pool, self.dialer) if self.dialer is not None else None,
            callbacks=self.web_callbacks, quota=PgCallbackQuota(self.pool), callback_settings=self.config.callbacks,
            preview=self.preview, definitions=self.campaign_catalog)
        self.metrics.registry.register(self.hub.metrics_collector())
        if self.deliverer is not None and self.outbox is not None:
            self.metrics.registry.register(self.deliverer.metrics_collector(self.outbox))
        await self.api.start()

    def _fence(self) -> None:
        """The leader lost its lock: stop at once, so the new leader never competes with us for Asterisk."""
        self.fatal = RuntimeError("lost the leader lock")
        self.fenced = True
        self.stopped.set()

    def all_nodes_connected(self) -> bool:
        return all(link.stream.stats.connected for link in self.links)

    def _kpi_settings(self) -> KpiSettings:
        """KPI definitions (service-level targets, success dispositions...) over the file's campaigns and those
        created through the API."""
        campaigns = all_campaigns(self.config.campaigns, self.campaign_catalog.stored)
        return KpiSettings.from_config(self.config.model_copy(update={"campaigns": campaigns}))

    def _refresh_kpi_settings(self) -> None:
        if getattr(self, "kpis", None) is not None:
            self.kpis.settings = self._kpi_settings()

    async def _learn_sounds(self) -> None:
        await self.links[0].stream.connected_event.wait()
        try:
            self.sounds = await ari_sounds(self.ari)
        except AriError as exc:
            log.warning("could not list Asterisk's sounds; campaigns from the API are not checked against them",
                        error=str(exc))

    async def _run_stream(self, link: NodeLink) -> None:
        try:
            await link.stream.run()
        except ApplicationReplaced as exc:
            self.fatal = exc
            self.stopped.set()

    async def reload(self, path: Path | None = None) -> ReloadResult:
        """Load and validate the config file again; apply it to new calls only if it is valid.

        Calls already in a flow keep the version they started with (their router closure holds it)."""
        source = path or self.config.source
        if source is None:
            return ReloadResult(False, self.config.version, ["no config file to reload from"])
        try:
            # Asterisk itself says which sounds exist, so a reload cannot bring in a prompt it would not play.
            sounds = await ari_sounds(self.ari) if self.stream.stats.connected else None
        except AriError as exc:
            log.warning("could not list Asterisk's sounds; reloading without the sound check", error=str(exc))
            sounds = None
        if sounds is not None:
            self.sounds = sounds
        try:
            new = await asyncio.to_thread(
                load_config, source, known_flows=set(CODE_FLOWS) | set(self._flows or {}), known_sounds=sounds
            )
        except ConfigError as exc:
            result = ReloadResult(False, self.config.version, [str(i) for i in exc.issues])
            log.error("config reload rejected; the running config stays", errors=result.errors)
            self._write_reload_status(result)
            return result
        taken = conflicts(new.campaigns, self.campaign_catalog.stored)
        if taken:
            result = ReloadResult(False, self.config.version, [conflict_message(taken)])
            log.error("config reload rejected; the running config stays", errors=result.errors)
            self._write_reload_status(result)
            return result
        warnings = [
            f"{key}: changed, takes effect at the next restart"
            for key in RESTART_ONLY
            if getattr(new, key) != getattr(self.config, key)
        ]
        applied = new.model_copy(update={k: getattr(self.config, k) for k in RESTART_ONLY})
        # Queues, agents, skills, transfers and the file's campaigns apply to the running services too — unless
        # something in use would disappear under a call: then nothing changes and the reload says why.
        new_acd = applied.acd()
        problems = self.acd.config_change_problems(new_acd)
        if self.dialer is not None:
            problems += self.dialer.file_campaign_problems(self.config.campaigns, applied.campaigns)
        if problems:
            result = ReloadResult(False, self.config.version, problems)
            log.error("config reload rejected; the running config stays", errors=result.errors)
            self._write_reload_status(result)
            return result
        self.acd.apply_config(new_acd)
        if self.dialer is not None:
            self.dialer.apply_file_campaigns(self.config.campaigns, applied.campaigns)
        self.runtime.router = make_router(applied, self.lookups, code_flows=self._flows,
                                          queue_handler=self.queue_handler, dnc=self.dnc,
                                          callbacks=self.web_callbacks)
        self.acd.callback_guard = CallbackGuard(applied.callbacks, self.dnc)
        self.acd.callback_booker = CallbackBooker(self.acd.callback_guard, self.web_callbacks)
        self.runtime.config_version = applied.version
        self.runtime.set_endpoint_homes(_endpoint_homes(applied), applied.ari.peer_dial)
        old_version, self.config = self.config.version, applied
        self._refresh_kpi_settings()
        result = ReloadResult(True, applied.version, warnings=warnings)
        log.info("config reloaded", old_version=old_version, version=applied.version, warnings=warnings)
        self._write_reload_status(result)
        return result

    async def queue_handler(self, call: Call, cmd: Queue) -> str:
        """An IVR queue node: the ACD for queues it knows; else the node's interim endpoint, if any."""
        if cmd.queue in self.acd.config.queues:
            return await self.acd.handle(call, cmd)
        return await bridge_to_endpoint(call, cmd)

    def _write_reload_status(self, result: ReloadResult) -> None:
        try:
            path = self.config.state_dir / "reload-status.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(result.as_dict()))
        except OSError as exc:
            log.warning("could not write reload status", error=str(exc))

    async def wait_connected(self, timeout: float = 30.0) -> None:
        """Until every Asterisk node's event stream is connected (and resynced)."""
        await asyncio.wait_for(asyncio.gather(*(link.stream.connected_event.wait() for link in self.links)),
                               timeout)

    async def stop(self, drain_seconds: float | None = None) -> None:
        """Drain calls, close the event stream, flush every event, release the database."""
        drain = self.config.calls.drain_seconds if drain_seconds is None else drain_seconds
        if getattr(self, "_sounds_task", None) is not None:
            self._sounds_task.cancel()
        if getattr(self, "hub", None) is not None:
            await _bounded("closing live event streams", self.hub.close(), 5)
        if getattr(self, "api", None) is not None:
            await _bounded("stopping the API", self.api.stop(), 5)  # no new commands while calls drain
        if getattr(self, "dialer", None) is not None:
            await _bounded("stopping the dialer", self.dialer.close(), 5)  # no new attempts while calls drain
        if getattr(self, "preview", None) is not None:
            await _bounded("stopping preview calls", self.preview.close(), 5)
        if getattr(self, "click_to_call", None) is not None:
            await _bounded("stopping click-to-call", self.click_to_call.close(), 5)
        if getattr(self, "fenced", False):
            # Another instance leads now and owns the calls: touch nothing in Asterisk, just let go.
            handed_back = 0
            self.runtime.stop_accepting()
        else:
            log.debug("stop: draining")
            handed_back = await self.runtime.drain(drain)
            log.debug("stop: drained")
            for link in self.links:
                await _bounded(f"destroying idle bridges of {link.name}", link.runtime.bridge_pool.close(), 5)
        self.acd.close()
        if getattr(self, "web_callbacks", None) is not None:
            # Pending "call me now" requests are in PostgreSQL: write their last state changes before it closes.
            await _bounded("writing web callback states", self.web_callbacks.close(), 6)
        if handed_back:
            log.warning("calls handed back to the dialplan at shutdown", calls=handed_back)
        # Every step is bounded: a shutdown that hangs is worse than one that logs what it had to cut short.
        for link in self.links:
            await link.close_stream(_bounded)
        log.debug("stop: stream and dispatch closed")
        await _bounded("flushing and closing the event writer", self.writer.close(), 20)
        log.debug("stop: writer closed")
        if getattr(self, "deliverer", None) is not None:
            await _bounded("stopping webhook delivery", self.deliverer.close(), 10)
        try:
            # asyncpg waits without limit for every connection to come back; never let that hang a shutdown.
            await asyncio.wait_for(self.pool.close(), 5)
        except TimeoutError:
            log.warning("database pool did not close within 5 s; terminating its connections")
            self.pool.terminate()
        log.debug("stop: pool closed")
        for link in self.links:
            await link.ari.close()
        await self.lookups.close()
        if getattr(self, "leadership", None) is not None:
            await self.leadership.release()
        log.debug("stop: clients closed")
        await close_database(self.db)
        self.stopped.set()
        stats = self.writer.stats
        log.info("callcore stopped", events_written=stats.written, events_dropped=stats.dropped,
                 events_rejected=stats.rejected)


async def _bounded(what: str, aw: object, seconds: float) -> None:
    try:
        await asyncio.wait_for(aw, seconds)  # type: ignore[arg-type]
    except TimeoutError:
        log.error("shutdown step took too long; skipped", step=what, seconds=seconds)


async def serve(config: CallcoreConfig) -> int:
    """``callcore run``: start, run until SIGTERM/SIGINT, drain, exit 0 (1 on a fatal ARI condition)."""
    app = CallcoreApp(config)
    await app.start()
    reporter = StatusReporter(app, config.state_dir / STATUS_FILE)
    await reporter.start()  # status.json every 5 s (`callcore status`); systemd READY/STATUS/WATCHDOG
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_requested.set)
    reloads: set[asyncio.Task[ReloadResult]] = set()

    def on_sighup() -> None:
        reporter.reloading()
        task = loop.create_task(app.reload())
        reloads.add(task)
        task.add_done_callback(reloads.discard)
        task.add_done_callback(lambda _t: reporter.reloaded())

    loop.add_signal_handler(signal.SIGHUP, on_sighup)
    pid_file = config.state_dir / "callcore.pid"
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{os.getpid()}\n")
    waiters = [
        asyncio.create_task(stop_requested.wait()),
        asyncio.create_task(app.stopped.wait()),
    ]
    await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    for w in waiters:
        w.cancel()
    log.info("shutting down", reason="fatal" if app.fatal else "signal")
    reporter.stopping()
    await app.stop()
    await reporter.close()
    pid_file.unlink(missing_ok=True)
    if getattr(app, "fenced", False):
        return FENCED_EXIT
    return 1 if app.fatal else 0


def _endpoint_homes(config: CallcoreConfig) -> dict[str, str]:
    """Agents' phones registered on a named Asterisk node (the others are dialled as they are)."""
    return {agent.endpoint: agent.node for agent in config.agents.values() if agent.node is not None}
