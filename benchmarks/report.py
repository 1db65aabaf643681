"""The printed table: one line per measurement, Switchboard and the SDK side by side."""

from __future__ import annotations

from typing import Any


def _fmt(summary: dict[str, Any] | None, digits: int = 1) -> str:
    if not summary or summary.get("median") is None:
        return "-"
    return f"{summary['median']:.{digits}f} [{summary['min']:.{digits}f}-{summary['max']:.{digits}f}]"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(measurement, switchboard, sdk/baseline, ratio) rows."""
    out: list[tuple[str, str, str, str]] = []
    bench = results.get("benchmarks", {})

    for key, row in (bench.get("connect_list") or {}).items():
        if "error" in row or not isinstance(row, dict) or "switchboard" not in row:
            continue
        out.append(
            (
                (
                    f"connect+init+tools/list {key} (ms, {row['runs']} runs, "
                    f"{row['http_requests']['switchboard']}/{row['http_requests']['sdk']} req)"
                ),
                _fmt(row["switchboard"]),
                _fmt(row["sdk"]),
                _ratio(row["ratio"]),
            )
        )
        cpu = row.get("client_cpu_ms")
        if cpu:
            out.append(
                (
                    f"  client CPU per connect+list {key} (ms)",
                    _fmt(cpu["switchboard"], 2),
                    _fmt(cpu["sdk"], 2),
                    _ratio(_div(cpu["switchboard"]["median"], cpu["sdk"]["median"])),
                )
            )
    for key, row in (bench.get("throughput") or {}).items():
        if not isinstance(row, dict) or "switchboard" not in row:
            continue
        cpu = row["client_cpu_ms_per_call"]
        out.append(
            (
                f"tools/call {key} (calls/s, {row['calls']} calls x {row['rounds']})",
                _fmt(row["switchboard"]),
                _fmt(row["sdk"]),
                _ratio(row["ratio"]),
            )
        )
        out.append(
            (
                f"  client CPU per call {key} (ms)",
                _fmt(cpu["switchboard"], 2),
                _fmt(cpu["sdk"], 2),
                _ratio(_div(cpu["switchboard"]["median"], cpu["sdk"]["median"])),
            )
        )
    sync = bench.get("sync") or {}
    for section, label in (("servers", ""), ("passthrough", " passthrough")):
        for count, row in (sync.get(section) or {}).items():
            if "error" in row:
                out.append((f"sync{label} N={count}: FAILED", str(row["error"])[:120], "", ""))
                continue
            sdk = row.get("sdk_gather", {})
            for variant, data in row.items():
                if variant == "sdk_gather":
                    continue
                cpu = (data.get("cpu_ms") or {}).get("median")
                out.append(
                    (
                        (
                            f"sync{label} N={count} {variant} (ms; CPU {cpu} ms; RSS peak "
                            f"{data['rss_peak_mb']['median']} MB)"
                        ),
                        _fmt(data["wall_ms"]),
                        _fmt(sdk.get("wall_ms")) if sdk else "-",
                        _ratio(_div(data["wall_ms"]["median"], (sdk.get("wall_ms") or {}).get("median"))),
                    )
                )
            if sdk:
                cpu = (sdk.get("cpu_ms") or {}).get("median")
                out.append(
                    (
                        (
                            f"sync{label} N={count} sdk_gather (ms; CPU {cpu} ms; RSS peak "
                            f"{sdk['rss_peak_mb']['median']} MB)"
                        ),
                        "-",
                        _fmt(sdk["wall_ms"]),
                        "",
                    )
                )
    flow = bench.get("oauth_flow") or {}
    if "switchboard" in flow:
        req = flow["http_requests"]
        out.append(
            (
                (
                    f"OAuth first connection, full flow (ms; requests {req['switchboard']['median']:.0f} vs "
                    f"{req['sdk']['median']:.0f})"
                ),
                _fmt(flow["switchboard"]),
                _fmt(flow["sdk"]),
                _ratio(flow["ratio"]),
            )
        )
    refresh = bench.get("oauth_refresh") or {}
    for scenario in ("server_expired", "clock_expired"):
        row = refresh.get(scenario)
        if not row:
            continue
        sb, sdk = row["switchboard"], row["sdk"]
        out.append(
            (
                f"{refresh['callers']} calls, expired token ({scenario}) (ms)",
                _fmt(sb["wall_ms"]),
                _fmt(sdk["wall_ms"]),
                _ratio(row["ratio"]),
            )
        )
        for key in ("refresh_requests", "authorizations", "unauthorized_401", "succeeded"):
            out.append((f"  {key}", _fmt(sb[key], 0), _fmt(sdk[key], 0), ""))
    store = bench.get("store") or {}
    if "insert" in store:
        ins = store["insert"]
        out.append(
            (f"store: record_snapshot of {ins['rows']} tools (s)", _fmt(ins["record_snapshot_s"], 2), "", "")
        )
    for label, row in (store.get("pages") or {}).items():
        out.append(
            (
                f"store page over {store['inventory']['current_tools']} tools: {label} (ms cold | warm)",
                _fmt(row["cold_ms"]),
                _fmt(row["warm_ms"]),
                "",
            )
        )
    if "contention" in store:
        row = store["contention"]
        out.append(
            (
                "store: open + filtered page, idle | while another process uses it (ms)",
                _fmt(row["idle_ms"]),
                _fmt(row["while_held_ms"]),
                f"{row['errors']} errors",
            )
        )
    out.extend(_engine_rows(bench.get("engines") or {}))
    dash = bench.get("dashboard") or {}
    if "blocked" in dash:
        out.append(("dashboard: first tool page (10k tools)", "BLOCKED: " + dash["blocked"], "", ""))
    elif "first_row_ms" in dash:
        out.append(
            (
                (
                    f"dashboard: first tool page, {dash['tools']} tools (ms; first visit "
                    f"{dash['first_visit_ms']:.0f})"
                ),
                _fmt(dash["first_row_ms"]),
                "",
                "",
            )
        )
    cli = bench.get("cli_startup") or {}
    baseline = (cli.get("commands") or {}).get("python -c pass")
    for name, row in (cli.get("commands") or {}).items():
        if row is baseline:
            continue
        out.append(
            (
                (
                    f"CLI start-up: {name}, whole process (ms; CPU {row['cpu_ms']['median']} ms; "
                    f"RSS peak {row['rss_peak_mb']['median']} MB) vs python -c pass"
                ),
                _fmt(row["wall_ms"]),
                _fmt(baseline["wall_ms"]),
                _ratio(row["ratio_to_python"]),
            )
        )
    for name, row in bench.items():
        if isinstance(row, dict) and "error" in row:
            out.append((f"{name}: FAILED", row["error"][:120], "", ""))
    gateway = bench.get("gateway") or {}
    calls, listing = gateway.get("calls"), gateway.get("list")
    if calls:
        out.append(
            (
                (
                    f"gateway vs direct tools/call, {calls['sessions']} sessions (ms; added "
                    f"{calls['added_median_ms']:+.2f} ms median)"
                ),
                _fmt(calls["gateway"], 2),
                _fmt(calls["direct"], 2),
                _ratio(calls["ratio"]),
            )
        )
    if listing:
        out.append(
            (
                f"gateway tools/list {listing['tools']} tools / {listing['connectors']} connectors vs one upstream (ms)",
                _fmt(listing["gateway"], 2),
                _fmt(listing["direct"], 2),
                _ratio(listing["ratio"]),
            )
        )
    return out


def _engine_rows(engines: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """PostgreSQL beside DuckDB: (measurement, postgresql, duckdb, ratio pg/duckdb)."""
    out = []
    pages = engines.get("pages") or {}
    if "postgresql" in pages and "duckdb" in pages:
        total = engines["inventory"]["postgresql"]["current_tools"]
        for label, row in pages["postgresql"].items():
            duck = pages["duckdb"][label]
            out.append(
                (
                    f"store page over {total} tools, postgresql | duckdb: {label} (ms cold)",
                    _fmt(row["cold_ms"]),
                    _fmt(duck["cold_ms"]),
                    _ratio(row.get("vs_duckdb_cold")),
                )
            )
    calls = engines.get("calls_4_processes") or {}
    if "postgresql" in calls and "duckdb" in calls:
        pg, duck = calls["postgresql"], calls["duckdb"]
        out.append(
            (
                (
                    f"tool calls from {pg['processes']} processes x {pg['concurrency']} concurrent, "
                    "postgresql | duckdb (calls/s)"
                ),
                f"{pg['calls_per_s']} ({pg['errors']} errors)",
                f"{duck['calls_per_s']} ({duck['errors']} errors)",
                _ratio(calls.get("postgresql_vs_duckdb")),
            )
        )
    notify = engines.get("stamp_vs_notify") or {}
    if notify:
        out.append(
            (
                "another process's credential change: stamp read | NOTIFY delivery (ms)",
                _fmt(notify["stamp_read_in_session_ms"], 2),
                _fmt(notify["notify_delivery_ms"], 2),
                "",
            )
        )
    return out


def _div(a: float | None, b: float | None) -> float | None:
    if a is None or not b:
        return None
    return round(a / b, 3)


def table(results: dict[str, Any]) -> str:
    lines = rows(results)
    header = ("measurement", "switchboard median [min-max]", "sdk / other median [min-max]", "ratio")
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(4)]
    text = [
        " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)),
        "-+-".join("-" * w for w in widths),
    ]
    text += [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in lines]
    targets = results.get("targets") or []
    if targets:
        text.append("")
        text.append("targets:")
        for t in targets:
            verdict = {True: "MET", False: "MISSED", None: "n/a"}[t["met"]]
            measured = "-" if t["measured"] is None else f"{t['measured']:g}{t['unit']}"
            text.append(
                f"  [{verdict:6s}] {t['target']}: {measured} (target {t['op']} {t['limit']:g}{t['unit']})"
            )
    return "\n".join(text)
