"""`python -m benchmarks [--quick] [--broker mosquitto|embedded] ...`: run the Lunar GS benchmarks.

Prints a table and writes benchmarks/results.json. Every figure is measured in this run, against a
private broker on a free loopback port, with the services as OS processes.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks import baseline, devices, kit, pipeline, profile, rehearsal, replay, side_by_side
from benchmarks import console as console_bench
from benchmarks.harness import private_broker
from lunar_gs.services.runtime.logging import configure_logging

RESULTS = Path(__file__).resolve().parent / "results.json"
SECTIONS = ("baseline", "pipeline", "rehearsal", "side_by_side", "replay", "kit", "console", "devices")


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--broker", choices=("mosquitto", "embedded"), default="mosquitto",
                   help="private broker to start (default mosquitto)")
    p.add_argument("--quick", action="store_true", help="shorter windows and fewer levels (about 3 minutes)")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections of {', '.join(SECTIONS)}")
    p.add_argument("--levels", type=_ints, help="offered TM rates of the throughput ramp, msgs/s "
                   "(default 100,500,1000,1500,2000,2500,3000,4000,5000,6000)")
    p.add_argument("--measure", type=float, help="seconds per throughput level (default 4, quick 2.5)")
    p.add_argument("--rehearsal-rates", type=_ints, help="rehearsal rates to try in order (default 1000,2000,4000,8000)")
    p.add_argument("--missions", type=_ints, help="side-by-side levels (default 1,2,4,8)")
    p.add_argument("--window", type=float, help="seconds per side-by-side trial (default 15, quick 8)")
    p.add_argument("--replay-messages", type=int, help="messages of the replay benchmark (default 20000, "
                   "quick 10000)")
    p.add_argument("--console-rate", type=int, default=1000, help="offered drill TM msgs/s of the console "
                   "benchmark (default 1000)")
    p.add_argument("--console-seconds", type=float, help="seconds per console window (default 10, quick 5)")
    p.add_argument("--console-browsers", type=int, default=5, help="operator pages of the console benchmark "
                   "(default 5)")
    p.add_argument("--device-calls", type=int, help="calls per device measure (default 500, quick 200)")
    p.add_argument("--device-rate", type=int, default=1000, help="rate of the bench-vs-sim rehearsals")
    p.add_argument("--profile", action="store_true", help="also profile every service under cProfile at a "
                   "fixed TM rate; .prof files and summary.txt go to --profile-dir")
    p.add_argument("--profile-rate", type=int, default=1000, help="offered TM msgs/s while profiling")
    p.add_argument("--profile-seconds", type=float, default=15.0)
    p.add_argument("--profile-dir", type=Path, default=Path("reports/bench-profile"))
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, archives)")
    p.add_argument("--output", type=Path, default=RESULTS, help="results JSON (default benchmarks/results.json)")
    args = p.parse_args(argv)
    q = args.quick
    args.levels = args.levels or ([100, 1000, 2000, 3000, 4000] if q else
                                  [100, 500, 1000, 1500, 2000, 2500, 3000, 4000, 5000, 6000])
    args.measure = args.measure or (2.5 if q else 4.0)
    args.rehearsal_rates = args.rehearsal_rates or ([2000] if q else [1000, 2000, 4000, 8000])
    args.missions = args.missions or ([1, 2, 4] if q else [1, 2, 4, 8])
    args.window = args.window or (8.0 if q else 15.0)
    args.replay_messages = args.replay_messages or (10_000 if q else 20_000)
    args.console_seconds = args.console_seconds or (5.0 if q else 10.0)
    args.device_calls = args.device_calls or (200 if q else 500)
    args.sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        p.error(f"unknown section(s) {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    configure_logging("warning", json=False)
    console = Console(width=None if sys.stdout.isatty() else 132)
    log = console.print
    started = time.monotonic()
    results: dict[str, Any] = {
        "broker": args.broker, "quick": args.quick, "cores": os.cpu_count(),
        "python": platform.python_version(), "machine": platform.machine(),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    workdir = Path(tempfile.mkdtemp(prefix="lgs-bench-"))
    try:
        with private_broker(args.broker) as broker:
            log(f"[bold]Lunar GS benchmarks[/]: {args.broker} broker at {broker.url}, {os.cpu_count()} cores, "
                f"work dir {workdir}")
            if "baseline" in args.sections:
                log("[bold]1. baseline[/]: bare aiomqtt publish -> subscribe")
                results["baseline"] = baseline.run(broker.url, duration_s=3.0 if args.quick else 5.0,
                                                   paced_rates=[100, 1000], paced_s=2.0 if args.quick else 3.0)
                log(f"  {results['baseline']['msgs_per_s']:.0f} msgs/s")
            if "pipeline" in args.sections:
                log("[bold]2. TM pipeline[/]: HAL sample -> node -> relay -> ground-control archive")
                results["pipeline"] = pipeline.run(
                    broker.url, workdir, levels=args.levels, measure_s=args.measure, settle_s=1.5,
                    latency_levels=[100, 1000], log=log)
            if "rehearsal" in args.sections:
                log("[bold]3. nominal rehearsal[/] at increasing rates")
                results["rehearsal"] = rehearsal.run(broker.url, workdir, rates=args.rehearsal_rates,
                                                     timeout_s=240, log=log)
            if "side_by_side" in args.sections:
                log("[bold]4. missions side by side[/] at rate 100")
                results["side_by_side"] = side_by_side.run(broker.url, workdir, levels=args.missions,
                                                           window_s=args.window, log=log)
            if "replay" in args.sections:
                log("[bold]5. replay[/]: replay at rate inf beside plain publish loops of the same messages")
                results["replay"] = rep = replay.run(broker.url, messages=args.replay_messages,
                                                     repeats=1 if args.quick else 2, log=log)
                for name, one in rep["sets"].items():
                    rates = one["msgs_per_s"]
                    log(f"  {name}: replay {rates['replay']:,.0f} msgs/s = "
                        f"{one['replay_vs_aiomqtt']:.2f} x bare aiomqtt ({rates['aiomqtt']:,.0f}), {one['replay_vs_bus']:.2f} x our Bus loop "
                        f"({rates['bus']:,.0f})")
            if "kit" in args.sections:
                log("[bold]6. test kit[/]: what never windows add to each packet the client hears")
                results["kit"] = kit.run(count=10_000 if args.quick else 20_000)
                k = results["kit"]
                log(f"  {k['per_packet_us']['0']} us/packet with no window, +{k['never_overhead_us_per_packet']} us "
                    f"with one ({k['ratio_one_window']} x), {k['ratio_ten_windows']} x with ten")
            if "console" in args.sections:
                log(f"[bold]7. operator console[/]: TM packet at ground control -> value in "
                    f"{args.console_browsers} browser(s), at {args.console_rate:,} TM/s")
                results["console"] = console_bench.run(broker.url, workdir, offered=args.console_rate,
                                                       window_s=args.console_seconds,
                                                       browsers=args.console_browsers, log=log)
            if "devices" in args.sections:
                log("[bold]8. devices behind real links[/]: Modbus TCP and the serial line against sim")
                results["devices"] = devices.run(broker.url, workdir, count=args.device_calls,
                                                 rate=args.device_rate, rehearsals=True, log=log)
            if args.profile:
                log("[bold]9. profile[/] of each service under cProfile (CPU time)")
                results["profile"] = profile.run(broker.url, workdir, args.profile_dir.resolve(),
                                                 offered=args.profile_rate, seconds=args.profile_seconds,
                                                 top=25, log=log)
    finally:
        if args.keep:
            log(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    _headline(results)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    console.print(render(results))
    log(f"results: {args.output} ({results['elapsed_s']} s)")
    return 0


def _headline(results: dict[str, Any]) -> None:
    """The top-level keys: one number each (details stay in their sections)."""
    base = results.get("baseline", {})
    pipe = results.get("pipeline", {})
    if base and pipe:
        results["tm_throughput_ratio"] = round(pipe["capacity_msgs_per_s"] / base["msgs_per_s"], 3)
    else:
        results["tm_throughput_ratio"] = None
    latency = pipe.get("latency", {})
    results["added_latency_p99_ms"] = (latency.get("max") or {}).get("p99_ms")
    results["added_latency_ms"] = {k: {"p50": v["p50_ms"], "p99": v["p99_ms"], "msgs_per_s": v["msgs_per_s"]}
                                   for k, v in latency.items()}
    results["max_sustained_tm_msgs_per_s"] = pipe.get("max_sustained_msgs_per_s")
    reh = results.get("rehearsal", {})
    results["rehearsal_wall_seconds"] = reh.get("wall_seconds")
    results["rehearsal_rate"] = reh.get("max_passing_rate")
    results["rehearsal_mission_s_per_wall_s"] = reh.get("mission_s_per_wall_s")
    results["missions_side_by_side"] = results.get("side_by_side", {}).get("missions_side_by_side")
    results["replay_throughput_ratio"] = results.get("replay", {}).get("replay_vs_aiomqtt")
    rest, load = pipe.get("rss_rest_mb", {}), pipe.get("rss_load_mb", {})
    results["service_rss_mb"] = {n: {"rest": round(rest[n], 1), "load": round(load.get(n, 0.0), 1)} for n in rest}


def _f(value: Any, fmt: str = "{:,.1f}") -> str:
    return "-" if value is None else fmt.format(value)


def render(r: dict[str, Any]) -> Table:
    t = Table(title=f"Lunar GS benchmarks ({r['broker']} broker, {r['cores']} cores"
                    f"{', quick' if r['quick'] else ''})", show_lines=False)
    t.add_column("measure")
    t.add_column("result", justify="right")
    t.add_column("baseline / detail", justify="right")
    base, pipe = r.get("baseline", {}), r.get("pipeline", {})
    if pipe:
        t.add_row("TM throughput, HAL -> archive (msgs/s)", _f(pipe["capacity_msgs_per_s"]),
                  f"bare aiomqtt {_f(base.get('msgs_per_s'))}")
        t.add_row("[bold]tm_throughput_ratio[/] (goal >= 0.8)", _f(r["tm_throughput_ratio"], "{:.3f}"), "")
        t.add_row("max sustained TM rate (msgs/s; >= 90 % of nominal archived, none lost, p99 <= 100 ms)", _f(pipe["max_sustained_msgs_per_s"], "{:,}"),
                  f"HK period {pipe['hk_period_s']} sim s, {pipe['streams']} streams")
        for key, lv in pipe.get("latency", {}).items():
            if key == "max" and lv["msgs_per_s"] in (100, 1000):
                continue
            bl = base.get("latency", {}).get(str(lv["msgs_per_s"]), {})
            label = f"added latency at {lv['msgs_per_s']:,}/s{' (max)' if key == 'max' else ''} p50 / p99 (ms)"
            t.add_row(label, f"{_f(lv['p50_ms'], '{:.1f}')} / {_f(lv['p99_ms'], '{:.1f}')}",
                      (f"bare {_f(bl.get('p50_ms'), '{:.2f}')} / {_f(bl.get('p99_ms'), '{:.2f}')}; " if bl else "")
                      + f"light time {lv['light_time_wall_ms']} ms, lost {lv['lost']}")
        t.add_row("[bold]added_latency_p99_ms[/] (at max sustained)", _f(r["added_latency_p99_ms"]), "")
    reh = r.get("rehearsal", {})
    if reh:
        for run in reh["runs"]:
            t.add_row(f"rehearsal at rate {run['rate']:,}", "PASSED" if run["passed"] else "FAILED",
                      f"wall {_f(run.get('wall_seconds'))} s, {_f(run.get('mission_s_per_wall_s'))} mission-s/wall-s")
        t.add_row("[bold]rehearsal_wall_seconds[/] (highest passing rate)", _f(r["rehearsal_wall_seconds"]),
                  f"rate {_f(reh.get('max_passing_rate'), '{:,}')}")
    sbs = r.get("side_by_side", {})
    if sbs:
        for trial in sbs["trials"]:
            t.add_row(f"{trial['missions']} mission(s) at rate 100, p50 / p99 (ms)",
                      f"{_f(trial['p50_ms'])} / {_f(trial['p99_ms'])}",
                      f"lost {trial['lost']}, {_f(trial['tm_per_s'])} TM/s, {'pass' if trial['passed'] else 'FAIL'}")
        t.add_row("[bold]missions_side_by_side[/] (p99 <= 100 ms, no loss)", str(r["missions_side_by_side"]), "")
    rep = r.get("replay", {})
    if rep:
        for name, one in rep["sets"].items():
            rates = one["msgs_per_s"]
            t.add_row(f"replay at rate inf, {name} ({one['qos1_share']:.0%} QoS 1; msgs/s)",
                      _f(rates["replay"]),
                      f"bare aiomqtt loop {_f(rates['aiomqtt'])}, Bus loop {_f(rates['bus'])}")
            t.add_row(f"  replay / bare aiomqtt, {name}", _f(one["replay_vs_aiomqtt"], "{:.3f}"),
                      f"replay / Bus {_f(one['replay_vs_bus'], '{:.3f}')}; "
                      f"file read {_f(one['file_read_msgs_per_s'])}/s")
        t.add_row("[bold]replay_throughput_ratio[/] (mixed)", _f(r["replay_throughput_ratio"], "{:.3f}"),
                  f"{rep['messages']:,} msgs per run, best of {rep['repeats']}, Nagle off")
        t.add_row("bare aiomqtt loop, mixed, Nagle on (msgs/s)", _f(rep["nagle_aiomqtt_mixed_msgs_per_s"]),
                  "a QoS 1 publish waits for the broker's delayed ACK")
    kit_result = r.get("kit", {})
    if kit_result:
        per = kit_result["per_packet_us"]
        t.add_row("test kit: client's work per packet, no window (us)", _f(per["0"], "{:.2f}"), "the baseline")
        t.add_row("[bold]never_overhead_us_per_packet[/] (one window)", _f(kit_result["never_overhead_us_per_packet"],
                  "{:.2f}"), f"{kit_result['ratio_one_window']} x the baseline; ten windows "
                             f"{kit_result['ratio_ten_windows']} x")
    con = r.get("console", {})
    if con.get("skipped"):
        t.add_row("operator console", "skipped", con["skipped"])
    elif con:
        w, wo = con["with_browsers"], con["without"]
        lat, sock, frame = w["latency"], w["socket_latency"], w["frame_latency"]
        t.add_row(f"console: TM at ground control -> value shown in {con['browsers']} pages at "
                  f"{con['offered_msgs_per_s']:,} TM/s, p50 / p99 / max (ms)",
                  f"{_f(lat['p50_ms'])} / {_f(lat['p99_ms'])} / {_f(lat['max_ms'])}",
                  f"{lat['samples']:,} samples, {w['not_shown']:,} not shown; goal p99 <= "
                  f"{con['p99_goal_ms']:g}: {'met' if con['p99_met'] else 'NOT met'}")
        t.add_row("  to the page's socket handler / to the next frame drawn, p50 / p99 (ms)",
                  f"{_f(sock['p50_ms'])} / {_f(sock['p99_ms'])}; {_f(frame['p50_ms'])} / {_f(frame['p99_ms'])}",
                  f"{w['renders_newest']:,} of {w['renders']:,} renders showed the newest packet")
        t.add_row("  ground control CPU, without / with pages (% of a core)",
                  f"{_f(wo['gc_cpu_pct'])} / {_f(w['gc_cpu_pct'])}",
                  f"ratio {_f(con['gc_cpu_ratio'], '{:.2f}')}; stream {_f(wo.get('gc_stream_per_s'))} / "
                  f"{_f(w.get('gc_stream_per_s'))} TM/s; dropped {con['gc_bus']['incoming_overflow']:,}")
        t.add_row("  ground control's queue at the window's end, without / with pages (ms)",
                  f"{_f(wo.get('gc_lag_ms'))} / {_f(w.get('gc_lag_ms'))}",
                  "age of the newest packet it had decoded")
        t.add_row("  same span from the publisher (ground control's queue too), p50 / p99 (ms)",
                  f"{_f(w['from_publish']['p50_ms'])} / {_f(w['from_publish']['p99_ms'])}",
                  f"browsers {_f(w['browsers_cpu_pct'])} %, machine busy {_f(w['machine_busy_pct'])} % "
                  f"of {w['cores'] * 100} % (without pages {_f(wo['machine_busy_pct'])} %)")
    dev = r.get("devices")
    if dev:
        for name, d in dev["devices"].items():
            remote, sim = d["remote"], d["sim"]
            t.add_row(f"{name}: command round trip / poll, p50 (us)",
                      f"{_f(remote['command']['p50_us'], '{:,.0f}')} / {_f(remote['poll']['p50_us'], '{:,.0f}')}",
                      f"sim {_f(sim['command']['p50_us'])} / {_f(sim['poll']['p50_us'])}: "
                      f"{d['command_ratio']:,} x / {d['poll_ratio']:,} x; p99 "
                      f"{_f(remote['command']['p99_us'], '{:,.0f}')} / {_f(remote['poll']['p99_us'], '{:,.0f}')}")
        for cost in dev.get("snapshots", []):
            t.add_row(f"drill state with {cost['backlog']:,} unconfirmed events, JSON save / load (us)",
                      f"{_f(cost['json_save_us'], '{:,.0f}')} / {_f(cost['json_load_us'], '{:,.0f}')}",
                      f"pickle {_f(cost['pickle_save_us'], '{:,.0f}')} / {_f(cost['pickle_load_us'], '{:,.0f}')}: "
                      f"{cost['save_ratio']} x / {cost['load_ratio']} x; {cost['json_bytes']:,} bytes against "
                      f"{cost['pickle_bytes']:,}")
        reh = dev.get("rehearsal")
        if reh:
            bench, sim_run = reh["bench"], reh["sim"]
            t.add_row(f"nominal rehearsal at rate {reh['rate']}, bench profile / sim profile (wall s)",
                      f"{_f(bench.get('wall_seconds'))} / {_f(sim_run.get('wall_seconds'))}",
                      f"ratio {_f(reh.get('wall_ratio'), '{:.2f}')}; passed {bench.get('passed')} / "
                      f"{sim_run.get('passed')}; figures {bench.get('figures')} / {sim_run.get('figures')}")
    for node, mb in r.get("service_rss_mb", {}).items():
        t.add_row(f"RSS {node} (MB) rest / load", f"{mb['rest']:.1f} / {mb['load']:.1f}", "")
    prof = r.get("profile")
    if prof:
        for node, s in prof["services"].items():
            top = next((f for f in s["top_cumulative_own_code"] if "cli.py" not in f["func"]
                        and "composition" not in f["func"]), None)
            if top:
                t.add_row(f"profile {node}: top project function", f"{top['pct']} %", top["func"])
    t.add_row("elapsed (s)", _f(r.get("elapsed_s")), "")
    return t


if __name__ == "__main__":
    sys.exit(main())
