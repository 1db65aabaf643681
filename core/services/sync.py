"""The sync engine: list each server's tools (all pages) with the right credential and record snapshots.

The store is touched in few, short sessions: one to prepare every job (connector, credential,
provider inputs), then group commits — the snapshots of all fetches that finished while the previous
commit ran are written together (`ToolRepository.record_syncs`: a fixed number of statements per
batch).
A store session costs a DuckDB open; one per server made 200 servers 60 times slower. If the store
fails a batch, each sync is committed on its own so one bad write cannot take the others with it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from core.auth_schemes import ProviderInputs
from core.errors import (
    ConfigurationError,
    NotFoundError,
    ProtocolError,
    StoreError,
    SwitchboardError,
    TransportError,
)
from core.models import SyncResult
from core.oauth import CredentialKey
from core.services.context import DEFAULT_CONCURRENCY, ServiceContext, failure_status
from core.services.credentials import Credentials, resolve_key
from core.services.pool import Slot
from core.store.records import Connector, SnapshotResult

log = logging.getLogger(__name__)


class SyncEngine:
    def __init__(self, context: ServiceContext, credentials: Credentials) -> None:
        self._context = context
        self._credentials = credentials

    async def sync(self, connector: str, agent: str | None = None) -> SyncResult:
        """One credential's sync; an operator mistake (unknown name, missing agent) raises."""
        slots = self._credentials.pool.slots()
        job = (await self._context.db(self._prepare, [(connector, agent)], slots))[0]
        if isinstance(job.error, ConfigurationError):
            raise job.error  # an operator mistake (unknown name, missing agent), not a failed sync
        if job.error is not None:
            return job.result(error=job.error)
        fetched = await self._fetch(job)
        return (await self._context.db(self._commit, [fetched]))[0]

    async def sync_many(
        self,
        connectors: list[str] | None = None,
        agent: str | None = None,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        on_start: Callable[[int], None] | None = None,
        on_plan: Callable[[list[tuple[str, str | None]]], None] | None = None,
    ) -> AsyncIterator[SyncResult]:
        """Sync several connectors concurrently (at most `concurrency` fetches at once); yields each
        result as it is recorded. One failure never stops the others. `None` = every connector. A
        per_agent connector is synced as `agent` when one is named, else once per agent holding a
        credential. Before the first result, `on_start` gets the number of syncs and `on_plan` the
        (connector, agent) of each, so a progress display can list them all from the start."""
        slots = self._credentials.pool.slots()
        jobs = await self._context.db(self._plan_and_prepare, connectors, agent, slots)
        if on_start is not None:
            on_start(len(jobs))
        if on_plan is not None:
            on_plan([(job.result().connector, job.agent) for job in jobs])
        for job in jobs:
            if job.error is not None:
                yield job.result(error=job.error)
        limit = asyncio.Semaphore(max(1, concurrency))
        finished: asyncio.Queue[_Fetched] = asyncio.Queue()

        async def fetch(job: _SyncJob) -> None:
            async with limit:
                finished.put_nowait(await self._fetch(job))

        tasks = [asyncio.create_task(fetch(job)) for job in jobs if job.error is None]
        try:
            remaining = len(tasks)
            while remaining:
                batch = [await finished.get()]
                while not finished.empty():
                    batch.append(finished.get_nowait())
                remaining -= len(batch)
                for result in await self._context.db(self._commit, batch):
                    yield result
        finally:
            for task in tasks:
                task.cancel()

    # --- prepare (one store session) -------------------------------------------------------------

    def _plan_and_prepare(
        self, connectors: list[str] | None, agent: str | None, cached: set[Slot]
    ) -> list[_SyncJob]:
        with self._context.store.session():
            return self._prepare(self._plan(connectors, agent), cached)

    def _plan(
        self, connectors: list[str] | None, agent: str | None
    ) -> list[tuple[str | Connector, str | None]]:
        store = self._context.store
        known = {c.name: c for c in store.connectors.list()}
        names = list(known) if connectors is None else list(dict.fromkeys(connectors))
        holders: dict[str, list[str]] = {}
        if agent is None:
            for credential in store.credentials.health():
                if credential.agent is not None:
                    holders.setdefault(credential.connector, []).append(credential.agent)
        jobs: list[tuple[str | Connector, str | None]] = []
        for name in names:
            conn = known.get(name)
            if conn is None:
                jobs.append((name, None))  # an unknown name still gets its own failed result
            elif conn.credential_mode == "shared":
                jobs.append((conn, None))
            elif agent is not None:
                jobs.append((conn, agent))
            else:
                jobs.extend((conn, holder) for holder in holders.get(name, []))
        return jobs

    def _prepare(self, jobs: list[tuple[str | Connector, str | None]], cached: set[Slot]) -> list[_SyncJob]:
        """Resolve every job's connector, credential and provider inputs in one store session."""
        store = self._context.store
        prepared = []
        with store.session():
            for connector, agent in jobs:
                job = _SyncJob(connector if isinstance(connector, str) else connector.name, agent)
                try:
                    job.connector = (
                        store.connectors.named(connector) if isinstance(connector, str) else connector
                    )
                    job.key = resolve_key(store, job.connector, agent, managing=False)
                    job.stamp = store.credentials.stamp(job.key)
                    if (job.key, job.connector.url, job.stamp) not in cached:
                        job.inputs = self._credentials.read_inputs(job.connector, job.key)
                except SwitchboardError as exc:
                    job.error = exc
                prepared.append(job)
        return prepared

    # --- fetch (network, no store) ---------------------------------------------------------------

    async def _fetch(self, job: _SyncJob) -> _Fetched:
        started = time.perf_counter()
        assert job.connector is not None and job.key is not None
        try:
            client = await self._credentials.client(job.connector, job.key, job.stamp, job.inputs)
            async with self._credentials.pool.using(client):
                return _Fetched(job, started, tools=await client.list_tools())
        except SwitchboardError as exc:
            return _Fetched(job, started, error=exc)
        except Exception as exc:  # a bug must fail one sync, not hang or abort the others
            log.exception("unexpected error syncing %s", job.name)
            return _Fetched(
                job, started, error=TransportError(f"unexpected {type(exc).__name__} while syncing")
            )

    # --- commit (one store session and transaction per batch) ------------------------------------

    def _commit(self, batch: list[_Fetched]) -> list[SyncResult]:
        """Record fetched tool lists as snapshots, and failures as connector status, in one session
        and one transaction; if the store fails the batch, each sync is committed on its own."""
        try:
            with self._context.store.transaction():
                return self._record(batch)
        except StoreError:
            if len(batch) == 1:
                raise
            return [result for fetched in batch for result in self._commit([fetched])]

    def _record(self, batch: list[_Fetched]) -> list[SyncResult]:
        store = self._context.store
        fetched_lists = [f for f in batch if f.error is None]
        recorded = dict(
            zip(
                map(id, fetched_lists),
                # The credential's key names the list: (connector, agent for per_agent, else '').
                store.tools.record_syncs(
                    [(f.job.key.connector_id, f.job.key.agent_id, f.tools) for f in fetched_lists]
                ),
                strict=True,
            )
        )
        # Same transaction: no process ever sees a new list before its first-sync approvals.
        store.pinning.pin_new(
            [r.snapshot_id for r in recorded.values() if isinstance(r, SnapshotResult) and not r.unchanged]
        )
        results = []
        for fetched in batch:
            job, outcome = fetched.job, recorded.get(id(fetched), fetched.error)
            if isinstance(outcome, NotFoundError):
                # Removed while its tools were being fetched: nothing to record it against.
                error = NotFoundError(f"{job.name} was removed during the sync")
                results.append(job.result(error=error, started=fetched.started))
                continue
            if isinstance(outcome, ConfigurationError):
                # The store refused the list itself (e.g. a tool without a name): the server's fault,
                # recorded like any other failed sync, not reported as an operator mistake.
                outcome = ProtocolError(f"{job.connector.name} sent an invalid tool list: {outcome.message}")
            if isinstance(outcome, SwitchboardError):
                status = failure_status(job.connector, outcome)
                if status is not None:
                    store.connectors.update(job.connector.id, status=status, last_error=str(outcome))
                results.append(job.result(error=outcome, started=fetched.started))
            else:
                results.append(
                    job.result(tools=outcome.tool_count, changed=outcome.drifted, started=fetched.started)
                )
        return results


@dataclass
class _SyncJob:
    name: str
    agent: str | None
    connector: Connector | None = None
    key: CredentialKey | None = None
    stamp: tuple | None = None
    inputs: ProviderInputs | None = None
    error: SwitchboardError | None = None

    def result(
        self,
        *,
        error: SwitchboardError | None = None,
        tools: int = 0,
        changed: int = 0,
        started: float | None = None,
    ) -> SyncResult:
        duration = (time.perf_counter() - started) * 1000 if started is not None else 0.0
        name = self.connector.name if self.connector else self.name
        return SyncResult(
            name,
            self.agent,
            ok=error is None,
            tools=tools,
            changed=changed,
            error=str(error) if error else None,
            duration_ms=duration,
        )


@dataclass
class _Fetched:
    job: _SyncJob
    started: float
    tools: list[dict[str, Any]] = field(default_factory=list)
    error: SwitchboardError | None = None
