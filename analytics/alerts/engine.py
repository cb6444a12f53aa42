"""The alert engine: live readings, device events, gateway status and KPIs in; alerts and notifications out.

    async with AlertEngine(settings, registry, rules, subscribers=subs) as engine:
        await engine.observe("gd1", ts_ms, {"lel_pct": 30.0})   # the analytics service's hook
        ...

Evaluation state (hysteresis, on-delay, windows) is kept in memory per rule and source; what is open
lives in the shared SQLite store, which every worker consults, so N workers (and a restarted one)
agree. Store calls run in one dedicated thread, never on the event loop. Three named tasks run in one
TaskGroup: the MQTT connection (publishing, and with `subscribe=True` also receiving: `run_alerts`),
the tick loop (staleness, escalation, open-alert refresh) and the dispatch loop (fan-out of lifecycle
events to recipients, delivery of the outbox). With `EngineOptions.registry_path` and `rules_dir` set, two
more watch the registry file and the per-park rules folder and swap in each valid new version without a
restart (`apply_registry`, `apply_rules`); an invalid file is logged and the last good version stays.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, ParamSpec, Self, TypeVar

import aiomqtt
import httpx
import numpy as np
import orjson
import prometheus_client

from analytics.alerts.delivery import RetryPolicy, webhook_headers
from analytics.alerts.logic import (
    HOUR_MS,
    WEEK_MS,
    Change,
    LevelState,
    RateState,
    Transition,
    anomalous,
    beijing_hour_start,
    is_off_hours,
    rolling_mean,
    step_levels,
    step_rate,
)
from analytics.alerts.rules import (
    AnomalyRule,
    BaseLoadRule,
    DailyQuotaRule,
    DemandRule,
    GatewayOfflineRule,
    RateRule,
    RuleBook,
    RulesError,
    ThresholdRule,
    default_rulebook,
    load_rulebook,
)
from analytics.alerts.store import AlertDraft, AlertStore, OutboxRow, Target
from analytics.alerts.subscribers import Subscriber
from parkmodel.codec import CodecError, GatewayStatus, decode_event, decode_status, decode_telemetry
from parkmodel.points import POINTS
from parkmodel.registry import DeviceRef, Registry
from parkmodel.topics import (
    EVENT_SUBSCRIPTION,
    KPI_SUBSCRIPTION,
    STATUS_SUBSCRIPTION,
    TELEMETRY_SUBSCRIPTION,
    DeviceTopic,
    DeviceTopicKind,
    TopicError,
    alerts_topic,
    safety_topic,
    shared,
)
from parkmodel.watch import ChangeWatcher, RegistryWatcher
from smartpark.aio import raise_if_cancelling
from smartpark.config import Settings
from smartpark.mqtt import mqtt_client_kwargs

__all__ = ["AlertEngine", "EngineOptions", "run_alerts"]

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

EVENTS = prometheus_client.Counter("smartpark_alert_events", "Alert lifecycle events", ["category", "event"])
DELIVERIES = prometheus_client.Counter("smartpark_alert_deliveries", "Notification attempts", ["kind", "result"])
MESSAGES = prometheus_client.Counter("smartpark_alert_messages", "Messages seen by the alert engine", ["result"])

LEVEL_ZH = ("", "一级", "二级", "三级")
LEVEL_EN = ("", "level 1", "level 2", "level 3")
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class EngineOptions:
    """Knobs of the engine (defaults suit production; tests shorten the intervals).

    Args:
        store_path: the SQLite file (default `{settings.var_dir}/alerts.sqlite`).
        subscribe: also subscribe to telemetry, events, status and KPIs (the standalone runner).
        group: shared-subscription group of the standalone runner.
        client_id: MQTT client id (default `{analytics.client_id}-alerts`).
        publish_mqtt: notify over MQTT (the contract topics).
        tick_s: period of staleness, escalation and open-alert refresh.
        dispatch_poll_s: how often the outbox is looked at without a wake-up (other workers, the API).
        lease_ttl_s: how long a fan-out or delivery lease lasts without renewal.
        retry: backoff of failed deliveries.
        default_escalate_after_s: escalation delay of safety rules that do not set one.
        registry_path: registry file to follow (`apply_registry` on each valid change); None: fixed registry.
        rules_dir: folder of per-park `{park}.yaml` rule overrides to follow (`apply_rules`); None: fixed rules.
        watch_s: how often the registry file and the rules folder are looked at.
    """

    store_path: Path | None = None
    subscribe: bool = False
    group: str = "alerts"
    client_id: str | None = None
    publish_mqtt: bool = True
    tick_s: float = 1.0
    dispatch_poll_s: float = 0.5
    lease_ttl_s: float = 15.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    default_escalate_after_s: float = 300.0
    registry_path: Path | None = None
    rules_dir: Path | None = None
    watch_s: float = 1.0


@dataclass(slots=True)
class _Window:
    samples: deque[tuple[int, float]] = field(default_factory=deque)
    total: float = 0.0

    def add(self, ts: int, value: float, span_ms: float) -> tuple[float, int]:
        """Add a sample; return (mean over the span, covered milliseconds)."""
        self.samples.append((ts, value))
        self.total += value
        while self.samples[0][0] < ts - span_ms:
            self.total -= self.samples.popleft()[1]
        return self.total / len(self.samples), ts - self.samples[0][0]


@dataclass(slots=True)
class _Hour:
    start: int = 0
    total: float = 0.0
    n: int = 0


class AlertEngine:
    """Evaluates alert rules on the live stream and notifies at least once.

    Args:
        settings: platform settings (mqtt, var_dir, analytics.client_id are used).
        registry: the park registry.
        rules: the rule book (default: the shipped rules).
        subscribers: webhook recipients.
        options: engine knobs.
        clock: epoch-ms clock (tests freeze it).
    """

    def __init__(self, settings: Settings, registry: Registry, rules: RuleBook | None = None, *,
                 subscribers: list[Subscriber] | None = None, options: EngineOptions | None = None,
                 clock: Callable[[], int] = wall_ms) -> None:
        self.settings = settings
        self.registry = registry
        self.rules = rules or default_rulebook()
        self.subscribers = {s.target: s for s in subscribers or []}
        self.options = options or EngineOptions()
        self.clock = clock
        self.store_path = self.options.store_path or Path(settings.var_dir) / "alerts.sqlite"
        self.owner = f"{self.options.client_id or 'alerts'}-{uuid.uuid4().hex[:8]}"
        self.store: AlertStore | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._levels: dict[tuple[str, str], LevelState] = {}
        self._rates: dict[tuple[str, str], RateState] = {}
        self._open: dict[tuple[str, str], int] = {}
        self._seen: dict[str, int] = {}
        self._offline_reported: dict[str, int] = {}
        self._demand: dict[str, _Window] = {}
        self._hours: dict[str, _Hour] = {}
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._wake = asyncio.Event()
        self._http: httpx.AsyncClient | None = None
        self._tasks: asyncio.TaskGroup | None = None
        self._loops: list[asyncio.Task[None]] = []
        self._delivering: dict[str, asyncio.Task[None]] = {}
        self._target_locks: dict[str, asyncio.Lock] = {}
        self._stack = contextlib.AsyncExitStack()

    # --- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        try:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="alerts-store")
            self._stack.callback(self._executor.shutdown, wait=True)
            self.store = await self._call(AlertStore, self.store_path)
            self._stack.push_async_callback(self._close_store)
            self._open = await self._call(self.store.open_levels)
            self._http = await self._stack.enter_async_context(httpx.AsyncClient())
            self._tasks = await self._stack.enter_async_context(asyncio.TaskGroup())
            self._loops = [
                self._tasks.create_task(self._tick_loop(), name="alerts-tick"),
                self._tasks.create_task(self._dispatch_loop(), name="alerts-dispatch"),
            ]
            if self.options.publish_mqtt or self.options.subscribe:
                self._loops.append(self._tasks.create_task(self._mqtt_loop(), name="alerts-mqtt"))
            for watcher in self._watchers():
                self._loops.append(self._tasks.create_task(watcher.run(), name=watcher.name))
        except BaseException:
            await self._stack.aclose()
            raise
        log.info("alert engine started", extra={"store": str(self.store_path), "owner": self.owner})
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        for task in [*self._loops, *self._delivering.values()]:
            task.cancel()
        await self._stack.aclose()

    # --- live changes of the registry and the rules ---------------------------------------------------

    def _watchers(self) -> list[ChangeWatcher[Any]]:
        out: list[ChangeWatcher[Any]] = []
        if self.options.registry_path is not None:
            out.append(RegistryWatcher(self.options.registry_path, self.apply_registry,
                                       interval_s=self.options.watch_s, name="alerts-registry-watch"))
        rules_dir = self.options.rules_dir
        if rules_dir is not None:
            out.append(ChangeWatcher(lambda: rules_dir.glob("*.yaml"), lambda: self._load_rules(self.registry),
                                     self.apply_rules, errors=(RulesError,), interval_s=self.options.watch_s,
                                     name="alerts-rules-watch"))
        for watcher in out:
            watcher.prime()
        return out

    def _load_rules(self, registry: Registry) -> RuleBook:
        rules_dir = self.options.rules_dir
        return load_rulebook(registry, rules_dir if rules_dir is not None and rules_dir.is_dir() else None)

    def apply_rules(self, rules: RuleBook) -> None:
        """Swap in a new, validated rule book (the rules watch calls this). Hysteresis and windows are kept
        per rule id and source, so an open alert continues under its rule's new limits.

        Args:
            rules: the new rule book.
        """
        self.rules = rules
        log.info("alert rules applied: defaults %s, park overrides %s", rules.default.revision,
                 {park: rs.revision for park, rs in rules.parks.items()})

    async def apply_registry(self, registry: Registry) -> None:
        """Swap in a new registry without a restart (the registry watch calls this on each valid change).

        Locations, contracted capacities, roles and poll intervals are read from the registry in force at
        each evaluation; the park rule files are validated again against it (kept as they were if they no
        longer validate); alerts still open for devices, gateways or enterprises that left the registry are
        cleared, and their in-memory state dropped.

        Args:
            registry: the new, validated registry.
        """
        assert self.store is not None
        rules: RuleBook | None = None
        if self.options.rules_dir is not None:
            try:
                rules = await asyncio.to_thread(self._load_rules, registry)
            except RulesError as exc:
                log.error("alert rules do not fit the new registry, keeping the current rules: %s", exc)
        self.registry = registry
        if rules is not None:
            self.apply_rules(rules)
        devices = {ref.device.id for ref in registry.devices()}
        enterprises = {e.id for p in registry.parks for e in p.enterprises}
        gateways = {g.id for p in registry.parks for e in p.enterprises for g in e.gateways}
        known = {"device": devices, "enterprise": enterprises, "gateway": gateways}
        for table in (self._seen, self._offline_reported):
            for d in [d for d in table if d not in devices]:
                del table[d]
        for key in [k for k in self._demand if k.rsplit("/", 1)[-1] not in enterprises]:
            del self._demand[key]
        for ent in [e for e in self._hours if e not in enterprises]:
            del self._hours[ent]

        def gone(source: str) -> bool:
            kind, _, ident = source.partition("/")
            return kind in known and ident not in known[kind]

        orphans = [(rule, source) for rule, source in self._open if gone(source)]
        for key in [k for k in [*self._levels, *self._rates] if gone(k[1])]:
            self._levels.pop(key, None)
            self._rates.pop(key, None)
        if orphans:
            store, at = self.store, self.clock()

            def clear() -> list[tuple[str, dict[str, Any]]]:
                return [ev for rule, source in orphans for ev in store.clear(rule, source, None, at_ms=at)]

            for event, alert in await self._call(clear):
                EVENTS.labels(category=alert["category"], event=event).inc()
            for key in orphans:
                self._open.pop(key, None)
            self.wake()
        log.info("alert engine applied a new registry: %d devices; %d alerts of removed sources cleared",
                 len(devices), len(orphans))

    async def _close_store(self) -> None:
        assert self.store is not None
        with contextlib.suppress(Exception):
            await self._call(self.store.release_leases, self.owner)
        await self._call(self.store.close)

    async def _call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run a store call in the store thread (SQLite never blocks the event loop)."""
        assert self._executor is not None
        return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def wait_connected(self) -> None:
        """Wait until the MQTT connection (and subscriptions, if any) are up (wrap in `asyncio.timeout`)."""
        await self._connected.wait()

    def wake(self) -> None:
        """Have the dispatcher look at the outbox now."""
        self._wake.set()

    # --- observing --------------------------------------------------------------------------------

    async def observe(self, device_id: str, ts_ms: int, fields: Mapping[str, float]) -> None:
        """Evaluate one reading of a device (telemetry) against its park's rules.

        Args:
            device_id: registry device id (unknown ids are counted and ignored).
            ts_ms: reading time, epoch ms.
            fields: point name → value.
        """
        ref = self.registry.device(device_id)
        if ref is None:
            MESSAGES.labels(result="unknown_device").inc()
            return
        self._seen[device_id] = max(ts_ms, self._seen.get(device_id, 0))
        ruleset = self.rules.for_park(ref.park.id)
        actions: list[tuple[Any, str, Transition, AlertDraft]] = []
        for name, value in fields.items():
            for rule in ruleset.by_role_point.get((ref.device.role, name), ()):
                source = f"device/{device_id}"
                tr = self._step_point(rule, source, ts_ms, float(value))
                if tr is not None:
                    actions.append((rule, source, tr, self._device_draft(rule, ref, tr)))
        if actions:
            await self._apply(actions, ts_ms)

    async def observe_event(self, device_id: str, ts_ms: int, event_type: str, state: int = 1) -> None:
        """Evaluate a device event (a fire panel input): it feeds the rules of the point of the same name.

        Args:
            device_id: registry device id.
            ts_ms: event time, epoch ms.
            event_type: event type (e.g. "smoke_alarm").
            state: 1 active, 0 back to normal.
        """
        if event_type not in POINTS:
            MESSAGES.labels(result="unknown_event").inc()
            return
        await self.observe(device_id, ts_ms, {event_type: float(state)})

    async def observe_status(self, gateway_id: str, status: GatewayStatus, ts_ms: int | None = None) -> None:
        """Evaluate a gateway status (or its last will): gateway offline, devices reported offline.

        Args:
            gateway_id: registry gateway id.
            status: the decoded status.
            ts_ms: receive time (default: the engine clock; wills carry ts 0).
        """
        found = self.registry.gateway(gateway_id)
        if found is None:
            MESSAGES.labels(result="unknown_gateway").inc()
            return
        park, ent, gw = found
        at = ts_ms if ts_ms is not None else self.clock()
        for device_id, dev in status.devices.items():
            if dev.online:
                self._offline_reported.pop(device_id, None)
            else:
                self._offline_reported.setdefault(device_id, at)
        if status.state == "offline":
            for d in gw.devices:  # a dead gateway says nothing of its devices: all are unreachable
                self._offline_reported.setdefault(d.id, at)
        actions = []
        for rule in self.rules.for_park(park.id).of_kind(GatewayOfflineRule):
            source = f"gateway/{gateway_id}"
            key = (rule.id, source)
            if status.state == "offline" and key not in self._open:
                self._open[key] = 1
                tr = Transition(Change.RAISE, 0.0, 1)
            elif status.state == "online" and key in self._open:
                del self._open[key]
                tr = Transition(Change.CLEAR, 1.0, 0)
            else:
                continue
            draft = self._draft(rule, source, park.id, ent.id, None, None, gw.name or gw.id, None, None,
                                f"{gw.name or gw.id} {rule.name_zh}", f"{rule.name_en}: {gw.id}", rule.severity, None)
            actions.append((rule, source, tr, draft))
        if actions:
            await self._apply(actions, at)
        await self._check_stale(at, [d.id for d in gw.devices])

    async def observe_kpis(self, kpis: Mapping[str, Any], ts_ms: int | None = None) -> None:
        """Evaluate the energy rules on KPIs: one `sp/v1/{park}/kpi` message, or `compute_kpis` output.

        Args:
            kpis: `{"park", "ts", "kpi", "enterprises": {id: {KPI}}}` or `{park: {"kpi", "enterprises"}}`.
            ts_ms: time of the KPIs (default: the message's `ts`, else the engine clock).
        """
        messages = {kpis["park"]: kpis} if "enterprises" in kpis else dict(kpis)
        for park_id, msg in messages.items():
            if self.registry.park(park_id) is None:
                MESSAGES.labels(result="unknown_park").inc()
                continue
            at = ts_ms if ts_ms is not None else int(msg.get("ts") or self.clock())
            await self._kpi_rules(park_id, msg.get("enterprises") or {}, at)

    # --- evaluation -------------------------------------------------------------------------------

    def _step_point(self, rule: ThresholdRule | RateRule, source: str, ts: int, value: float) -> Transition | None:
        key = (rule.id, source)
        if isinstance(rule, ThresholdRule):
            st = self._levels.setdefault(key, LevelState())
            self._sync_level(st, key)
            if rule.absolute:
                value = abs(value)
            if rule.average_s:
                value = rolling_mean(st, ts, value, rule.average_s)
            tr = step_levels(st, ts, value, levels=rule.levels, clear=rule.clear, direction=rule.direction,
                             on_delay_s=rule.on_delay_s)
        else:
            rs = self._rates.setdefault(key, RateState())
            rs.active = key in self._open
            tr = step_rate(rs, ts, value, window_s=rule.window_s, raise_per_min=rule.raise_per_min,
                           clear_per_min=rule.clear_per_min, direction=rule.direction)
        self._note(key, tr)
        return tr

    def _sync_level(self, st: LevelState, key: tuple[str, str]) -> None:
        """Align in-memory hysteresis with the store: another worker (or our past self) may have raised or cleared."""
        if not st.level and key in self._open:
            st.level = self._open[key]
        elif st.level and key not in self._open:
            st.level = 0

    def _note(self, key: tuple[str, str], tr: Transition | None) -> None:
        if tr is None:
            return
        if tr.change is Change.CLEAR:
            self._open.pop(key, None)
        else:
            self._open[key] = max(tr.level, self._open.get(key, 0))

    def _escalate_ms(self, rule: Any) -> int | None:
        if rule.escalate_after_s is not None:
            return int(rule.escalate_after_s * 1000)
        if rule.category == "safety":
            return int(self.options.default_escalate_after_s * 1000)
        return None

    def _draft(self, rule: Any, source: str, park: str, enterprise: str | None, device: str | None,
               point: str | None, location: str, value: float | None, limit: float | None, text_zh: str,
               text_en: str, severity: Any, level: int | None) -> AlertDraft:
        return AlertDraft(
            rule=rule.id, source=source, category=rule.category, severity=severity, level=level, park=park,
            enterprise=enterprise, device=device, point=point, location=location, value=value, limit=limit,
            message_zh=text_zh, message_en=text_en, escalate_after_ms=self._escalate_ms(rule),
            update_interval_ms=int(rule.update_interval_s * 1000),
        )

    def _device_draft(self, rule: ThresholdRule | RateRule, ref: DeviceRef, tr: Transition) -> AlertDraft:
        dev = ref.device
        where = f"{ref.enterprise.name} {dev.location} {dev.name or dev.id}".strip()
        unit = POINTS[rule.point].unit
        if isinstance(rule, ThresholdRule):
            level = max(tr.level, 1)
            lv = rule.levels[level - 1]
            limit, severity = lv.raise_at, lv.severity
            tag_zh = LEVEL_ZH[level] if len(rule.levels) > 1 and level < len(LEVEL_ZH) else ""
            tag_en = f" ({LEVEL_EN[level]})" if len(rule.levels) > 1 and level < len(LEVEL_EN) else ""
            mean = "1小时均值" if rule.average_s else ""
            text_zh = f"{where} {rule.name_zh}{tag_zh}: {mean}{tr.value:.4g} {unit}（限值 {limit:g} {unit}）"
            text_en = f"{rule.name_en}{tag_en} at {dev.id}: {tr.value:.4g} {unit} (limit {limit:g} {unit})"
            lvl: int | None = level
        else:
            limit, severity, lvl = rule.raise_per_min, rule.severity, None
            text_zh = f"{where} {rule.name_zh}: {tr.value:.4g} {unit}/分钟（限值 {limit:g}）"
            text_en = f"{rule.name_en} at {dev.id}: {tr.value:.4g} {unit}/min (limit {limit:g})"
        return self._draft(rule, f"device/{dev.id}", ref.park.id, ref.enterprise.id, dev.id, rule.point,
                           dev.location, tr.value, limit, text_zh, text_en, severity, lvl)

    async def _apply(self, actions: list[tuple[Any, str, Transition, AlertDraft]], at: int) -> None:
        """Write a batch of transitions in one store call (keeps them ordered against open-alert refreshes)."""
        assert self.store is not None
        store = self.store

        def write() -> list[tuple[str, dict[str, Any]]]:
            out: list[tuple[str, dict[str, Any]]] = []
            for rule, source, tr, draft in actions:
                if tr.change is Change.CLEAR:
                    out += store.clear(rule.id, source, draft.value, at_ms=at)
                else:
                    out += store.raise_or_repeat(draft, change=tr.change.value, at_ms=at)
            return out

        events = await self._call(write)
        for event, alert in events:
            EVENTS.labels(category=alert["category"], event=event).inc()
            log.info("alert %s: %s %s %s", event, alert["rule"], alert["source"], alert["severity"])
        if events:
            self.wake()

    async def _check_stale(self, now: int, devices: list[str] | None = None) -> None:
        """Raise or clear `stale` rules from the merged last-reading table and gateway reports."""
        assert self.store is not None
        seen = await self._call(self.store.merge_seen, dict(self._seen))
        actions = []
        refs = (self.registry.device(d) for d in devices) if devices is not None else self.registry.devices()
        for ref in refs:
            if ref is None:
                continue
            dev = ref.device
            rules = self.rules.for_park(ref.park.id).stale_by_role.get(dev.role, ())
            if not rules:
                continue
            last = seen.get(dev.id)
            reported = self._offline_reported.get(dev.id)
            if reported is not None and last is not None and last > reported:
                self._offline_reported.pop(dev.id, None)  # it answered since
                reported = None
            for rule in rules:
                source = f"device/{dev.id}"
                key = (rule.id, source)
                limit_ms = rule.intervals * dev.poll_interval_s * 1000
                silent = last is not None and now - last > limit_ms
                down = silent or reported is not None
                if down == (key in self._open):
                    continue
                if down:
                    self._open[key] = 1
                    tr = Transition(Change.RAISE, float(now - last) / 1000 if last else 0.0, 1)
                else:
                    del self._open[key]
                    tr = Transition(Change.CLEAR, 0.0, 0)
                why_zh = "网关报告离线" if reported is not None else f"{rule.intervals:g}个采集周期无数据"
                why_en = "reported offline by its gateway" if reported is not None else (
                    f"no reading for {rule.intervals:g} poll intervals")
                draft = self._draft(
                    rule, source, ref.park.id, ref.enterprise.id, dev.id, None, dev.location, tr.value,
                    limit_ms / 1000, f"{ref.enterprise.name} {dev.location} {dev.name or dev.id} {rule.name_zh}：{why_zh}",
                    f"{rule.name_en}: {dev.id} {why_en}", rule.severity, None)
                actions.append((rule, source, tr, draft))
        if actions:
            await self._apply(actions, now)

    async def _kpi_rules(self, park: str, enterprises: Mapping[str, Mapping[str, Any]], at: int) -> None:
        ruleset = self.rules.for_park(park)
        actions = []
        for ent_id, k in enterprises.items():
            found = self.registry.enterprise(ent_id)
            if found is None or found[0].id != park:
                continue
            ent = found[1]
            source = f"enterprise/{ent_id}"
            grid = k.get("grid_import_kw")
            for rule in ruleset.of_kind(DemandRule):
                if grid is None or ent.contracted_capacity_kw is None:
                    continue
                window = self._demand.setdefault(f"{rule.id}/{ent_id}", _Window())
                demand, covered = window.add(at, float(grid), rule.window_s * 1000)
                if covered < rule.min_window_s * 1000:
                    continue
                actions += self._kpi_level(rule, source, park, ent, at, demand, ent.contracted_capacity_kw, "kW",
                                           "15分钟需量", "15-min demand")
            consumed = k.get("consumed_today_kwh")
            quota = ruleset.quotas.get(ent_id)
            if consumed is not None and quota:
                for rule in ruleset.of_kind(DailyQuotaRule):
                    actions += self._kpi_level(rule, source, park, ent, at, float(consumed), quota, "kWh",
                                               "今日用电量", "energy today")
            load = k.get("load_kw")
            if load is not None:
                await self._fold_hour(park, ent_id, at, float(load))
        if actions:
            await self._apply(actions, at)

    def _kpi_level(self, rule: DemandRule | DailyQuotaRule, source: str, park: str, ent: Any, at: int,
                   value: float, base: float, unit: str, what_zh: str, what_en: str) -> list[Any]:
        key = (rule.id, source)
        st = self._levels.setdefault(key, LevelState())
        self._sync_level(st, key)
        tr = step_levels(st, at, value / base, levels=rule.levels, clear=rule.clear, direction=rule.direction)
        self._note(key, tr)
        if tr is None:
            return []
        level = max(tr.level, 1)
        lv = rule.levels[level - 1]
        limit = lv.raise_at * base
        draft = self._draft(
            rule, source, park, ent.id, None, None, ent.name, value, limit,
            f"{ent.name} {rule.name_zh}: {what_zh} {value:.1f} {unit}（限值 {limit:.1f} {unit}）",
            f"{rule.name_en}: {ent.id} {what_en} {value:.1f} {unit} (limit {limit:.1f} {unit})", lv.severity, level)
        return [(rule, source, tr, draft)]

    async def _fold_hour(self, park: str, ent_id: str, at: int, load_kw: float) -> None:
        """Accumulate hourly mean load; at an hour's end, store it and judge it against its baseline."""
        assert self.store is not None
        hour = self._hours.setdefault(ent_id, _Hour(beijing_hour_start(at)))
        start = beijing_hour_start(at)
        if start != hour.start and hour.n:
            mean = hour.total / hour.n
            await self._call(self.store.save_hour, ent_id, hour.start, mean, hour.n)
            await self._judge_hour(park, ent_id, hour.start, mean)
            hour.start, hour.total, hour.n = start, 0.0, 0
        hour.start = start
        hour.total += load_kw
        hour.n += 1

    async def _judge_hour(self, park: str, ent_id: str, hour_start: int, mean: float) -> None:
        assert self.store is not None
        ruleset = self.rules.for_park(park)
        baseline_rules = [*ruleset.of_kind(AnomalyRule), *ruleset.of_kind(BaseLoadRule)]
        if not baseline_rules:
            return
        weeks = max(r.weeks for r in baseline_rules)
        hours = [hour_start - w * WEEK_MS for w in range(1, weeks + 1)]
        stored = await self._call(self.store.hourly, [ent_id], hours)
        found = self.registry.enterprise(ent_id)
        assert found is not None
        ent = found[1]
        source = f"enterprise/{ent_id}"
        actions = []
        for rule in baseline_rules:
            row = np.array([[stored.get((ent_id, h), np.nan) for h in hours[: rule.weeks]]])
            if isinstance(rule, AnomalyRule):
                flags, median = anomalous(np.array([mean]), row, k=rule.k, min_abs=rule.min_kw,
                                          min_history=rule.min_history)
                flag, usual = bool(flags[0]), float(median[0])
                limit = usual
            else:
                if not is_off_hours(hour_start, rule.night_hours, rule.weekend):
                    flag, usual = False, float("nan")
                else:
                    count = int(np.sum(~np.isnan(row)))
                    usual = float(np.nanmedian(row)) if count else float("nan")
                    flag = (count >= rule.min_history and mean > usual * (1 + rule.margin)
                            and mean - usual > rule.min_kw)
                limit = usual * (1 + rule.margin)
            key = (rule.id, source)
            if flag == (key in self._open):
                continue
            if flag:
                self._open[key] = 1
                tr = Transition(Change.RAISE, mean, 1)
            else:
                del self._open[key]
                tr = Transition(Change.CLEAR, mean, 0)
            hh = (hour_start + 8 * HOUR_MS) // HOUR_MS % 24
            draft = self._draft(
                rule, source, park, ent_id, None, "active_power_kw", ent.name, mean, limit,
                f"{ent.name} {rule.name_zh}: {hh:02d}时平均负荷 {mean:.1f} kW（通常 {usual:.1f} kW）",
                f"{rule.name_en}: {ent_id} hour {hh:02d} mean load {mean:.1f} kW (usual {usual:.1f} kW)",
                rule.severity, None)
            actions.append((rule, source, tr, draft))
        if actions:
            await self._apply(actions, hour_start + HOUR_MS)

    # --- periodic work ----------------------------------------------------------------------------

    async def tick(self, now_ms: int | None = None) -> None:
        """Staleness, escalation and refresh of the open alerts (the tick loop calls this each `tick_s`).

        Args:
            now_ms: evaluation time (default: the engine clock).
        """
        assert self.store is not None
        now = self.clock() if now_ms is None else now_ms
        await self._check_stale(now)
        events = await self._call(self.store.escalate_due, at_ms=now)
        for _, alert in events:
            EVENTS.labels(category=alert["category"], event="escalated").inc()
            log.warning("alert escalated: %s %s unacknowledged", alert["rule"], alert["source"])
        if events:
            self.wake()
        self._open = await self._call(self.store.open_levels)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(self.options.tick_s)
            try:
                await self.tick()
            except Exception:  # a bad tick must not stop alerting
                log.exception("alert tick failed")

    # --- notification -----------------------------------------------------------------------------

    def route(self, event: str, alert: dict[str, Any]) -> list[Target]:
        """Recipients of one lifecycle event: the contract MQTT topic and every subscriber in scope.

        Args:
            event: lifecycle event.
            alert: the alert's public JSON.
        """
        targets = []
        if self.options.publish_mqtt:
            if alert["category"] == "energy" and alert.get("enterprise"):
                topic = alerts_topic(alert["park"], alert["enterprise"])
            else:
                topic = safety_topic(alert["park"])
            targets.append(Target("mqtt", topic))
        for sub in self.subscribers.values():
            if sub.wants(alert):
                targets.append(Target(sub.target, None, sub.max_per_minute))
        return targets

    async def dispatch_once(self, *, wait: bool = False) -> None:
        """Fan out new events and start delivering every recipient that is due.

        Args:
            wait: deliver inline and return when done (tests), instead of in background tasks.
        """
        assert self.store is not None
        now = self.clock()
        ttl = int(self.options.lease_ttl_s * 1000)
        if await self._call(self.store.acquire_lease, "fanout", self.owner, ttl, at_ms=now):
            while await self._call(self.store.fan_out, self.route, at_ms=now):
                pass
            for sub in self.subscribers.values():
                if sub.reminder_interval_s:
                    await self._call(self.store.remind, Target(sub.target, None, sub.max_per_minute),
                                     int(sub.reminder_interval_s * 1000), at_ms=now)
        for target in await self._call(self.store.due_targets, at_ms=now):
            if wait:
                await self._deliver(target)
            elif target not in self._delivering:
                assert self._tasks is not None
                task = self._tasks.create_task(self._deliver_in_background(target),
                                               name=f"alerts-deliver-{target}")
                self._delivering[target] = task
                task.add_done_callback(lambda _t, name=target: self._delivering.pop(name, None))

    async def _dispatch_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.options.dispatch_poll_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.dispatch_once()
            except Exception:
                log.exception("alert dispatch failed")

    async def _deliver_in_background(self, target: str) -> None:
        """`_deliver` as a task of the engine's TaskGroup: an error must not abort the group (and with it the
        tick, dispatch and MQTT loops); the row stays in the outbox and the next dispatch retries it."""
        try:
            await self._deliver(target)
        except Exception:
            log.exception("delivery to %s failed; the outbox retries it", target)

    async def _deliver(self, target: str) -> None:
        """Deliver a recipient's due notifications in order, stopping at the first failure."""
        async with self._target_locks.setdefault(target, asyncio.Lock()):  # one sender per recipient here
            await self._deliver_locked(target)

    async def _deliver_locked(self, target: str) -> None:
        assert self.store is not None
        ttl = int(self.options.lease_ttl_s * 1000)
        while True:
            now = self.clock()
            if not await self._call(self.store.acquire_lease, f"deliver:{target}", self.owner, ttl, at_ms=now):
                return
            row = await self._call(self.store.head, target)
            if row is None or row.next_at > now:
                return
            started = time.perf_counter()
            status, error = await self._send(row)
            ok = error == ""
            duration = (time.perf_counter() - started) * 1000
            retry_at = None if ok else self.clock() + int(self.options.retry.delay_s(row.attempts + 1) * 1000)
            await self._call(self.store.record_attempt, row, ok=ok, status=status, error=error,
                             duration_ms=duration, retry_at=retry_at, at_ms=self.clock())
            kind = "mqtt" if target == "mqtt" else "webhook"
            DELIVERIES.labels(kind=kind, result="ok" if ok else "failed").inc()
            if not ok:
                log.warning("delivery to %s failed (attempt %d): %s", target, row.attempts + 1, error)
                return

    async def _send(self, row: OutboxRow) -> tuple[int | None, str]:
        """One attempt; returns (HTTP status or None, error text or "")."""
        if row.target == "mqtt":
            client = self._client
            if client is None or row.topic is None:
                return None, "mqtt not connected"
            try:
                async with asyncio.timeout(10):
                    await client.publish(row.topic, row.body, qos=1)
            except (aiomqtt.MqttError, TimeoutError) as exc:
                return None, f"mqtt: {exc or type(exc).__name__}"
            raise_if_cancelling()
            return None, ""
        sub = self.subscribers.get(row.target)
        if sub is None:
            return None, f"no subscriber {row.target} in the configuration"
        assert self._http is not None
        try:
            key = sub.key()
        except RulesError as exc:  # e.g. its secret's environment variable is gone: a failed attempt, retried
            return None, str(exc)
        headers = webhook_headers(key, row.body, row.delivery_id, row.event, self.clock())
        try:
            response = await self._http.post(sub.url, content=row.body, headers=headers, timeout=sub.timeout_s)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"
        if 200 <= response.status_code < 300:
            return response.status_code, ""
        return response.status_code, f"HTTP {response.status_code}"

    # --- MQTT -------------------------------------------------------------------------------------

    def subscriptions(self) -> list[str]:
        """Topics of the standalone runner. Telemetry and events are shared by the group; status is not,
        because a broker sends no retained messages on shared subscriptions and a retained last will is
        exactly what an alert worker must see at start-up; KPIs are small and every worker needs them whole
        for its demand windows."""
        group = self.options.group
        return [shared(group, TELEMETRY_SUBSCRIPTION), shared(group, EVENT_SUBSCRIPTION), STATUS_SUBSCRIPTION,
                KPI_SUBSCRIPTION]

    async def _mqtt_loop(self) -> None:
        cfg = self.settings.mqtt
        client_id = self.options.client_id or f"{self.settings.analytics.client_id}-alerts"
        attempt = 0
        while True:
            try:
                async with aiomqtt.Client(
                    cfg.host, cfg.port, identifier=client_id, keepalive=cfg.keepalive_s, **mqtt_client_kwargs(cfg),
                ) as client:
                    if self.options.subscribe:
                        for topic in self.subscriptions():
                            await client.subscribe(topic, qos=1)
                    self._client = client
                    self._connected.set()
                    attempt = 0
                    self.wake()
                    log.info("alert engine connected to MQTT %s:%s", cfg.host, cfg.port)
                    if self.options.subscribe:
                        async for message in client.messages:
                            await self.receive(message.topic.value, message.payload)
                    else:
                        await asyncio.Event().wait()
            except aiomqtt.MqttError as exc:
                self._client = None
                self._connected.clear()
                delay = min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2**attempt) * random.uniform(0.5, 1.0)
                attempt += 1
                log.warning("alert engine MQTT connection lost (%s); reconnecting in %.1f s", exc, delay)
                await asyncio.sleep(delay)

    async def receive(self, topic: str, payload: Any) -> None:
        """Dispatch one MQTT message to the matching `observe_*` (bad messages are counted and skipped).

        Args:
            topic: MQTT topic.
            payload: raw payload.
        """
        raw = payload if isinstance(payload, bytes) else bytes(payload or b"")
        try:
            parts = topic.split("/")
            if len(parts) == 4 and parts[3] == "kpi":
                await self.observe_kpis(orjson.loads(raw))
                MESSAGES.labels(result="ok").inc()
                return
            parsed = DeviceTopic.parse(topic)
            if parsed.kind is DeviceTopicKind.STATUS:
                await self.observe_status(parsed.device, decode_status(raw))
            elif self.registry.device_at(parsed.park, parsed.enterprise, parsed.device) is None:
                MESSAGES.labels(result="unknown_device").inc()
                return
            elif parsed.kind is DeviceTopicKind.TELEMETRY:
                for point in decode_telemetry(raw).points:
                    await self.observe(parsed.device, point.ts, point.fields)
            else:
                ev = decode_event(raw)
                await self.observe_event(parsed.device, ev.ts, ev.type, ev.state)
            MESSAGES.labels(result="ok").inc()
        except (TopicError, CodecError, orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            MESSAGES.labels(result="invalid").inc()
            log.debug("alert engine skipped %s: %s", topic, exc)
        except Exception:  # e.g. the store is locked: keep the worker alive; the next reading re-evaluates
            MESSAGES.labels(result="error").inc()
            log.exception("alert engine could not process a message on %s", topic)


async def run_alerts(settings: Settings, registry: Registry, rules: RuleBook | None = None, *,
                     subscribers: list[Subscriber] | None = None, options: EngineOptions | None = None) -> None:
    """Run the alert engine as its own service, subscribed to the live stream, until cancelled.

    Args:
        settings: platform settings.
        registry: the park registry.
        rules: the rule book (default: the shipped rules).
        subscribers: webhook recipients.
        options: engine knobs (`subscribe` is forced on).
    """
    opts = dataclasses.replace(options or EngineOptions(), subscribe=True)
    async with AlertEngine(settings, registry, rules, subscribers=subscribers, options=opts):
        await asyncio.Event().wait()
