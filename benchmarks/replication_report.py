"""benchmarks/replication.py's reading of its measurements: statistics, the checks of a
channel's history after the failovers, the targets, the markdown report and the plots. Nothing
here starts a process: tests/benchmarks/test_replication_report.py runs it on made-up numbers."""

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from accord_app.lab import plots

STORAGES = ("local fsync", "JetStream R1", "JetStream R3")
# The targets, as ratios in one run (see the docstring of replication.py).
ACKS_RATIO_TARGET = 0.5  # R3's sustained acks/s, one busy actor, over local fsync's
P50_TIMES_TARGET, P50_PLUS_MS_TARGET = 2.0, 2.0  # R3's p50 <= 2 x local + 2 ms
FAILOVER_MARGIN_S = 2.0  # failover p50 <= the router's detection time + 2 s
BUSY_SHARE = 0.8  # CPU use above this share of the machine's cores: the CPU is the limit


@dataclass
class Result:
    """One storage and actor count of the latency part."""

    storage: str
    actors: int
    p50_ms: float
    p99_ms: float
    acks_per_s: float
    failed: int  # writes that got an error instead of an ack (both phases)
    # CPU seconds per second of the sustained window, by process: "runtime" (this process:
    # the actors and their callers) and "NATS" (every NATS server together).
    cpu: dict[str, float] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)  # the failed writes, by error
    acks_rounds: list[float] = field(default_factory=list)  # each round's, when combined


def combined(rounds: Sequence[Result]) -> Result:
    """One storage and actor count over several rounds: the median of each measure, the
    failures of all, and each round's acks/s (their spread)."""
    errors: dict[str, int] = {}
    for result in rounds:
        for kind, count in result.errors.items():
            errors[kind] = errors.get(kind, 0) + count
    first = rounds[0]
    return Result(
        first.storage,
        first.actors,
        median([r.p50_ms for r in rounds]),
        median([r.p99_ms for r in rounds]),
        median([r.acks_per_s for r in rounds]),
        sum(r.failed for r in rounds),
        {key: median([r.cpu.get(key, 0.0) for r in rounds]) for key in first.cpu},
        errors,
        [r.acks_per_s for r in rounds],
    )


def spread(values: Sequence[float]) -> str:
    """The lowest and highest of several rounds' values, in brackets; nothing for one."""
    return f" ({min(values):,.0f} to {max(values):,.0f})" if len(values) > 1 else ""


def failures(result: Result) -> str:
    """ "0", or how many failed and with what: "100 (Fenced 99, TimeoutError 1)"."""
    kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(result.errors.items()))
    return f"{result.failed} ({kinds})" if kinds else str(result.failed)


def p99(samples: Sequence[float]) -> float:
    return statistics.quantiles(samples, n=100)[98] if len(samples) > 1 else samples[0]


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples) if samples else math.nan


@dataclass
class HistoryCheck:
    """What the members' copies of a channel say after the failovers."""

    messages: int  # the seqs of the channel's history
    acked: int  # messages the members got an ack for
    lost: int  # acked, but not in the history at the acked seq
    duplicates: int  # messages stored under two seqs or more
    gaps: int  # seqs missing between 1 and the last
    conflicts: int  # a seq seen with two different messages
    differing: int  # members whose history is not the first member's
    unseen: int = 0  # seqs of the history some member never saw (summed over the members)


def check_history(
    histories: Sequence[Mapping[int, str]],
    acks: Iterable[tuple[str, int]],
    conflicts: int = 0,
) -> HistoryCheck:
    """histories: each member's seq -> text after its catch-up; acks: (text, acked seq) of
    every acknowledged message of every member."""
    reference = histories[0] if histories else {}
    texts = list(reference.values())
    last = max(reference, default=0)
    acked = list(acks)
    return HistoryCheck(
        messages=len(reference),
        acked=len(acked),
        lost=sum(reference.get(seq) != text for text, seq in acked),
        duplicates=len(texts) - len(set(texts)),
        gaps=last - len(reference),
        conflicts=conflicts,
        differing=sum(history != reference for history in histories[1:]),
        unseen=sum(len(reference.keys() - history.keys()) for history in histories[1:]),
    )


def missing_runs(reference: Mapping[int, str], history: Mapping[int, str]) -> list[tuple[int, int]]:
    """The runs of seqs (first, last) of the reference that a member's history lacks."""
    runs: list[tuple[int, int]] = []
    for seq in sorted(reference.keys() - history.keys()):
        if runs and runs[-1][1] == seq - 1:
            runs[-1] = (runs[-1][0], seq)
        else:
            runs.append((seq, seq))
    return runs


def stale_acks(acks: Mapping[int, int], new_epoch: int, in_log_at_takeover: set[int]) -> int:
    """Zombie acks: numbers the old owner acknowledged under an epoch older than the new one,
    yet not in the log when the new epoch opened (so acknowledged after it)."""
    return sum(
        1
        for number, epoch in acks.items()
        if epoch < new_epoch and number not in in_log_at_takeover
    )


# -- targets -----------------------------------------------------------------------------------


@dataclass
class Target:
    met: bool
    what: str
    measured: str
    limit: str = ""  # what limits it, when missed


def cpu_sentence(result: Result, cores: int) -> str:
    runtime, nats = result.cpu.get("runtime", 0.0), result.cpu.get("NATS", 0.0)
    busy = result.cpu.get("machine", runtime + nats)
    others = max(0.0, busy - runtime - nats)
    sentence = (
        f"in its sustained window the machine's {cores} cores were {busy:.2f} busy: this"
        f" process (runtime and callers) {runtime:.2f}, the NATS servers {nats:.2f}, other"
        f" work {others:.2f}"
    )
    if busy >= BUSY_SHARE * cores:
        return sentence + ": the CPU is the limit, shared by the runtime and three servers"
    return (
        sentence + ": not the CPU, but waiting (each server's fsync, the round trips to a majority)"
    )


def targets(summary: Mapping[str, Any]) -> list[Target]:
    found: list[Target] = []
    cores = int(summary.get("machine", {}).get("cores") or 1)
    results = {(r.storage, r.actors): r for r in latency_results(summary)}
    local, r3 = results.get(("local fsync", 1)), results.get(("JetStream R3", 1))
    if local and r3:
        ratio = r3.acks_per_s / local.acks_per_s
        met = ratio >= ACKS_RATIO_TARGET
        found.append(
            Target(
                met,
                f"one busy actor, 3 replicas: sustained acks/s ≥ {ACKS_RATIO_TARGET}x local fsync",
                f"{r3.acks_per_s:,.0f} vs {local.acks_per_s:,.0f} acks/s: {ratio:.2f}x",
                "" if met else cpu_sentence(r3, cores),
            )
        )
        bound = P50_TIMES_TARGET * local.p50_ms + P50_PLUS_MS_TARGET
        met = r3.p50_ms <= bound
        rate = summary.get("settings", {}).get("rate", 0)
        found.append(
            Target(
                met,
                f"one actor, 3 replicas: send→ack p50 at {rate:g} writes/s"
                f" ≤ {P50_TIMES_TARGET:g}x local + {P50_PLUS_MS_TARGET:g} ms",
                f"{r3.p50_ms:.2f} vs {local.p50_ms:.2f} ms (bound {bound:.2f} ms)",
                "" if met else cpu_sentence(r3, cores),
            )
        )
    failover = finished(summary, "failover")
    if failover and failover.get("rounds"):
        rounds, detection = failover["rounds"], failover["detection_s"]
        p50 = median(rounds)
        met = p50 <= detection + FAILOVER_MARGIN_S
        found.append(
            Target(
                met,
                f"kill -9 of a busy owner → first ack elsewhere: p50 ≤ detection"
                f" ({detection:g} s) + {FAILOVER_MARGIN_S:g} s",
                f"p50 {p50:.2f} s, max {max(rounds):.2f} s over {len(rounds)} rounds",
                "" if met else failover_limit(failover),
            )
        )
        check = failover["history"]
        bad = check["lost"] + check["duplicates"] + check["gaps"] + check["conflicts"]
        found.append(
            Target(
                bad == 0,
                "after the kills: acked messages lost 0, duplicates 0, gaps 0",
                f"{check['acked']} acked of {check['messages']} stored: lost {check['lost']},"
                f" duplicates {check['duplicates']}, gaps {check['gaps']},"
                f" two messages under one seq {check['conflicts']}",
            )
        )
        runs = failover.get("unseen_runs", [])
        found.append(
            Target(
                check["differing"] == 0,
                "every member's view is the whole history",
                f"{check['differing']} of {failover['members'] - 1} other members differ from the"
                f" first, {check.get('unseen', 0)} seqs unseen",
                " ".join(unseen_lines(runs)).strip(),
            )
        )
    zombie = finished(summary, "zombie")
    if zombie and zombie.get("rounds"):
        stale = sum(r["stale_acks"] for r in zombie["rounds"])
        fenced = sum(r["fenced"] for r in zombie["rounds"])
        found.append(
            Target(
                stale == 0 and fenced == len(zombie["rounds"]),
                "paused old owner: acks with a stale epoch after the new epoch's first ack, 0",
                f"{stale} over {len(zombie['rounds'])} rounds; fenced in {fenced}",
            )
        )
    return found


def failover_limit(failover: Mapping[str, Any]) -> str:
    slow = sum(seconds > failover["detection_s"] for seconds in failover["rounds"])
    return (
        f"{slow} of {len(failover['rounds'])} rounds waited past the router's detection: the"
        " members' reconnection backoff (socket.js: 0.25 s, 0.5, 1, 2 s... with jitter) and the"
        " channel's rebuild from the log on the next host come on top of it"
    )


# -- the report --------------------------------------------------------------------------------


def latency_table(results: Sequence[Result], rate: float, callers: int) -> str:
    lines = [
        f"{'storage':<14} {'actors':>6}   send→ack at {rate:g}/s: {'p50':>8} {'p99':>9}"
        f"   sustained ({callers} callers) {'acks/s':>9}   failed",
    ]
    for r in results:
        lines.append(
            f"{r.storage:<14} {r.actors:>6}   {'':>17}{r.p50_ms:>7.2f} ms {r.p99_ms:>6.2f} ms"
            f"   {'':>21}{r.acks_per_s:>9,.0f}   {r.failed:>6}"
        )
    lines.append("\nRatios to local fsync, same actor count (acks/s: higher is better):")
    lines += ratio_lines(results)
    return "\n".join(lines)


def ratio_lines(results: Sequence[Result]) -> list[str]:
    local = {r.actors: r for r in results if r.storage == "local fsync"}
    lines = []
    for r in results:
        base = local.get(r.actors)
        if base is None or r is base:
            continue
        lines.append(
            f"  {r.storage:<14} {r.actors:>3} actors: p50 x{r.p50_ms / base.p50_ms:.2f},"
            f" p99 x{r.p99_ms / base.p99_ms:.2f}, acks/s x{r.acks_per_s / base.acks_per_s:.2f}"
        )
    return lines


def machine_sentence(summary: Mapping[str, Any]) -> str:
    m = summary.get("machine", {})
    loads = summary.get("load", [])
    load = f"{min(loads):.1f} to {max(loads):.1f}" if loads else "unknown"
    return (
        f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('system', '?')}, Python"
        f" {m.get('python', '?')}, nats-server {m.get('nats', '?')}, Accord {m.get('commit', '?')};"
        f" 1-minute load average {load} during the run (the machine was shared with other work)"
    )


def finished(summary: Mapping[str, Any], part: str) -> Any:
    """A part's measurements, or None if it did not run or did not finish."""
    found = summary.get(part)
    return None if not found or (isinstance(found, dict) and "error" in found) else found


def latency_results(summary: Mapping[str, Any]) -> list[Result]:
    return list(finished(summary, "latency") or [])


def markdown(summary: Mapping[str, Any]) -> str:
    out = [
        "# What replication costs, and what it survives",
        "",
        f"`{summary.get('command', '')}`, started {summary.get('started', '?')},"
        f" {summary.get('minutes', 0):.1f} minutes. Machine: {machine_sentence(summary)}.",
        "",
        "## Targets",
        "",
        "|  | target | measured | what limits it |",
        "|---|---|---|---|",
    ]
    for t in targets(summary):
        out.append(f"| {'✅' if t.met else '❌'} | {t.what} | {t.measured} | {t.limit} |")
    sections = [
        ("latency", f"Send→ack and sustained acks/s ({', '.join(STORAGES)})", latency_section),
        ("failover", "Failover: kill -9 of a busy channel's host", failover_section),
        ("zombie", "Zombie: a paused old owner", zombie_section),
        ("restore", "Restore time against the log's length", restore_section),
    ]
    for part, heading, section in sections:
        if part in summary:
            out += ["", f"## {heading}", ""]
            found = finished(summary, part)
            error = summary[part].get("error") if isinstance(summary[part], dict) else ""
            out += section(found, summary) if found else [f"Did not finish: {error}"]
            waiting = summary[part].get("waiting") if isinstance(summary[part], dict) else None
            if waiting:
                out += ["", "Where its tasks were waiting:", "", "```", *waiting, "```"]
    for name, figure in summary.get("figures", {}).items():
        out += ["", f"![{figure['alt']}]({name})", "", f"*{figure['caption']}*"]
    return "\n".join(out) + "\n"


def latency_section(results: list[Result], summary: Mapping[str, Any]) -> list[str]:
    s = summary.get("settings", {})
    out = [
        f"Fixed load: {s.get('rate', 0):g} writes/s in all, paced, for {s.get('seconds', 0):g} s"
        f" (latency from each write's scheduled time); sustained: {s.get('callers', 0)}"
        f" closed-loop callers for {s.get('seconds', 0):g} s. Each storage and actor count"
        f" {s.get('latency_rounds', 1)} times, the storages in a rotating order; the medians"
        " over the rounds (sustained acks/s: the lowest and highest round in brackets). CPU:"
        " cores busy in the sustained windows, in this process (runtime and callers), in the"
        " NATS servers, and on the whole machine (other work included).",
        "",
        "| storage | actors | p50 | p99 | sustained acks/s | failed | CPU runtime | CPU NATS |"
        " CPU machine |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cpu = r.cpu
        out.append(
            f"| {r.storage} | {r.actors} | {r.p50_ms:.2f} ms | {r.p99_ms:.2f} ms |"
            f" {r.acks_per_s:,.0f}{spread(r.acks_rounds)} | {failures(r)} |"
            f" {cpu.get('runtime', 0):.2f} |"
            f" {cpu.get('NATS', 0):.2f} | {cpu.get('machine', 0):.2f} |"
        )
    return [
        *out,
        "",
        "Ratios to local fsync, same actor count:",
        "",
        "```",
        *ratio_lines(results),
        "```",
    ]


def failover_section(failover: Mapping[str, Any], summary: Mapping[str, Any]) -> list[str]:
    rounds = failover["rounds"]
    return [
        f"A replicated cluster of 3 hosts behind Caddy (each a worker and a NATS server),"
        f" {failover['members']} members on one channel sending like the frontend (one message"
        " in flight each, reconnecting with its backoff, resuming with `after_seq`)."
        f" {len(rounds)} rounds: kill -9 of the channel's host at a random moment, time until"
        " the first ack of a message sent after the kill (on another host); then the host"
        " restarts, the channel is handed back, and every member has an ack at home before the"
        f" next round. The router's detection time: {failover['detection_s']:g} s (an active"
        f" health check every {failover['health_interval']}, failing after a timeout as long; a"
        " killed host's refused dials are noticed at once by the passive check).",
        "",
        f"kill → first ack: p50 {median(rounds):.2f} s, max {max(rounds):.2f} s;"
        f" rounds: {', '.join(f'{x:.2f}' for x in rounds)} s.",
        f"Handback (host restarted → its members moved home): p50"
        f" {median(failover['handbacks']):.2f} s.",
        *unseen_lines(failover.get("unseen_runs", [])),
    ]


def unseen_lines(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """What the members that missed messages missed, and whether their own ack came next."""
    if not runs:
        return []
    described = ", ".join(f"{r['member']} seqs {r['first']} to {r['last']}" for r in runs[:8])
    after_own = sum(bool(r["own_ack_next"]) for r in runs)
    why = (
        " A member resumes after the last seq up to which it has seen every one and asks for"
        " history on a gap (as socket.js does), so an ack that arrives before the messages"
        " under it cannot move its resume point past them: look for frames lost on a"
        " connection that stayed open."
        if after_own
        else ""
    )
    return [
        "",
        f"Messages some member never saw (in the channel, not in its view): {described}. In"
        f" {after_own} of {len(runs)} runs the seq right after was the member's own ack.{why}",
    ]


def zombie_section(zombie: Mapping[str, Any], summary: Mapping[str, Any]) -> list[str]:
    out = [
        "A host process writing to one actor (a few calls in flight) is paused with SIGSTOP;"
        " another host activates the actor (a new epoch) and acks a write; the old one gets"
        " SIGCONT. Stale: an ack under the old epoch for a write that was not in the log when"
        " the new epoch opened. Lost: an ack of the old epoch missing from the new owner's state.",
        "",
        "| round | acks before the pause | stale acks | lost | fenced |"
        " pause → new epoch's first ack |",
        "|---|---|---|---|---|---|",
    ]
    for n, r in enumerate(zombie["rounds"], start=1):
        out.append(
            f"| {n} | {r['acks_before']} | {r['stale_acks']} | {r['lost']} |"
            f" {'yes' if r['fenced'] else 'NO'} | {r['takeover_s']:.2f} s |"
        )
    return out


def restore_section(restore: Sequence[Mapping[str, Any]], summary: Mapping[str, Any]) -> list[str]:
    repeats = summary.get("settings", {}).get("restore_repeats", 0)
    out = [
        "One actor per length, one write per batch, on a 3-server cluster. Rebuild: a new"
        " host's first call (the file rebuilt from the log). Restore: a restore to the current"
        " bookmark (`on_next_session_restore_bookmark`), then the next call (the next"
        " activation replays). With snapshots: the default settings; without: the log's"
        f" snapshots neither read nor kept. Median of {repeats} each; the batches replayed and"
        " bytes read are the last rebuild's (each activation adds a batch: the actor's schema).",
        "",
        "| batches | snapshots | rebuild | restore | of which the restore call |"
        " batches replayed | bytes read |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in restore:
        out.append(
            f"| {r['batches']:,} | {'on' if r['snapshots'] else 'off'} |"
            f" {median(r['rebuild_s']) * 1000:.0f} ms | {median(r['restore_s']) * 1000:.0f} ms |"
            f" {median(r.get('restore_call_s', [])) * 1000:.0f} ms |"
            f" {r['replayed']:,} | {r['read_bytes']:,} |"
        )
    return [*out, "", restore_limit(restore)]


def restore_limit(restore: Sequence[Mapping[str, Any]]) -> str:
    """What limits a restore on the longest log, from the restore call's share of it."""
    longest = max(restore, key=lambda r: (r["batches"], r["snapshots"]))
    total, call = median(longest["restore_s"]), median(longest.get("restore_call_s", []))
    if not total or math.isnan(call):
        return ""
    return (
        f"With snapshots, a restore on {longest['batches']:,} batches took {total * 1000:.0f} ms,"
        f" {call / total:.0%} of it in the restore call itself (one read of the bookmark's entry"
        " and one append, `restore_on_next_session` in accord_app/actors/replica.py); the rest is"
        " the next activation, which starts from the newest snapshot at or before the target and"
        " replays the batches after it."
    )


# -- plots -------------------------------------------------------------------------------------


def restore_figure(restore: Sequence[Mapping[str, Any]]) -> Figure:
    """Rebuild and restore time against the log's length, with and without snapshots."""
    fig, (ax,) = plots.figure()
    series = {
        ("rebuild", True): "rebuild, snapshots",
        ("rebuild", False): "rebuild, no snapshots",
        ("restore", True): "restore, snapshots",
        ("restore", False): "restore, no snapshots",
    }
    for index, ((kind, snapshots), label) in enumerate(series.items()):
        rows = sorted(
            (r for r in restore if r["snapshots"] == snapshots), key=lambda r: r["batches"]
        )
        xs = [r["batches"] for r in rows]
        ys = [median(r[f"{kind}_s"]) for r in rows]
        ax.plot(
            xs,
            ys,
            linestyle="-" if snapshots else "--",
            linewidth=3,
            marker="o" if kind == "rebuild" else "s",
            markersize=11,
            color=plots.OTHER_COLOURS[index],
            label=label,
        )
    ax.set_xscale("log")
    ax.set_xlabel("batches in the actor's log")
    ax.set_ylabel("seconds to the first answer")
    plots.plain_axis(ax.xaxis)
    plots.legend(ax, "upper left")
    return fig


def overview_figure(summary: Mapping[str, Any]) -> Figure:
    """The deck's slide: each target's budget, and how much of it the measurement used (over
    1: missed). A ratio that must stay above its target uses target / measured."""
    fig, (ax,) = plots.figure()
    rows: list[tuple[str, float, str]] = []  # label, share of the budget used, what was measured
    results = {(r.storage, r.actors): r for r in latency_results(summary)}
    local, r3 = results.get(("local fsync", 1)), results.get(("JetStream R3", 1))
    if local and r3:
        ratio = r3.acks_per_s / local.acks_per_s
        rows.append(
            ("sustained acks/s", ACKS_RATIO_TARGET / ratio,
             f"{ratio:.2f}x local (target ≥ {ACKS_RATIO_TARGET:g}x)")
        )  # fmt: skip
        bound = P50_TIMES_TARGET * local.p50_ms + P50_PLUS_MS_TARGET
        rows.append(
            ("send→ack p50", r3.p50_ms / bound, f"{r3.p50_ms:.1f} ms (target ≤ {bound:.1f} ms)")
        )
    failover = finished(summary, "failover") or {}
    if failover.get("rounds"):
        bound = failover["detection_s"] + FAILOVER_MARGIN_S
        for name, value in (("p50", median(failover["rounds"])), ("max", max(failover["rounds"]))):
            rows.append(
                (f"kill -9 → ack, {name}", value / bound, f"{value:.2f} s (target ≤ {bound:g} s)")
            )
    positions = list(range(len(rows)))
    used = [row[1] for row in rows]
    colours = [plots.MODE_COLOURS["channel" if u <= 1 else "global"] for u in used]
    ax.barh(positions, used, color=colours, height=0.6)
    ax.axvline(1.0, color=plots.GUIDE_COLOUR, linestyle="--", linewidth=2)
    for y, (_, share, text) in zip(positions, rows, strict=True):
        ax.annotate(
            text,
            xy=(share, y),
            xytext=(10, 0),
            textcoords="offset points",
            va="center",
            fontsize=plots.TEXT_PT,
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 2},
            zorder=5,  # over the dashed line
        )
    ax.set_yticks(positions, [row[0] for row in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, max([*used, 1.0]) * 2.1)
    ax.set_xlabel("share of the target used (dashed: the target; past it, missed)")
    return fig


def save_figures(summary: dict[str, Any], folder: Path) -> None:
    """Draw the figures into `folder` and note them in the summary with their captions."""
    setting = (
        f"benchmarks/replication.py, {str(summary.get('started', ''))[:10]}, on"
        f" {machine_sentence(summary)}."
    )
    figures: dict[str, dict[str, str]] = {}
    if latency_results(summary):
        plots.save(overview_figure(summary), folder / "replication_targets.png")
        figures["replication_targets.png"] = {
            "alt": "replication's measured ratios and failover times against their targets",
            "caption": "With 3 replicas: one busy actor's sustained acks/s as a share of local"
            " fsync's, its send→ack p50 at a fixed load, and kill -9 of a channel's host to the"
            " first ack elsewhere, each against its target (dashed). " + setting,
        }
    restore = finished(summary, "restore")
    if restore:
        plots.save(restore_figure(restore), folder / "replication_restore.png")
        figures["replication_restore.png"] = {
            "alt": "rebuild and restore time against the log's length, with and without snapshots",
            "caption": "Time to an actor's first answer after a rebuild on a new host, and after"
            " a restore to a bookmark, against the batches in its log; dashed: no snapshots. "
            + setting,
        }
    summary["figures"] = figures
