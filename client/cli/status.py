"""``sidra status SERVER``: one screen of what a served board is doing now: the server's
health, who it takes this client for, the board, its running totals, who leases which
tiles, the jobs running and queued, and the deployments with their latest checks.

Every part is asked with a viewer's calls (grpc.health.v1 Check, GetCaller,
GetBoardInfo, ListLeases, ListJobs, ListDeployments), each on its own: a part the server refuses
(a role, a server without a state store) says why and the others are still shown. A board
whose link is down cannot answer GetBoardInfo; the UNAVAILABLE it gets then carries the
server's account of the link (board.proto LinkDown), shown in the board's place.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from typing import Annotated, Any

import typer

from sidra.cli.leases import holders
from sidra.cli.options import SERVER_ENV, SERVER_HELP, AsJson, server_address, server_url
from sidra.cli.texts import tiles_text
from sidra.cli.totals import totals
from sidra.cli.whoami import caller_text, expiry_warning, missing_token_hint
from sidra.client import Caller, RemoteBoard, TileLease
from sidra.client.deployments import Deployment
from sidra.client.jobs import JobInfo
from sidra.drivers import BoardUnavailable, SidraError, Unauthenticated, open_board
from sidra.training.held import holds

__all__ = ["status"]

MAX_ASKED_AT_ONCE = 16
"""Servers asked at the same time (each on a thread of its own)."""

Part = dict[str, Any]
"""One part of the status as JSON values, or ``{"error": "..."}`` when it was refused."""


def status(
    urls: Annotated[
        list[str],
        typer.Argument(
            help=f"One or more (a lab's boards). {SERVER_HELP}",
            show_default=False,
            envvar=SERVER_ENV,
        ),
    ],
    watch_s: Annotated[
        float | None,
        typer.Option(
            "--watch",
            min=0.1,
            metavar="SECONDS",
            help="Ask again every SECONDS until Ctrl-C: on a terminal the screen is redrawn "
            "each time, elsewhere each round follows the last (--json: a line per server "
            "and round, asked_unix_s saying when).",
        ),
    ] = None,
    rounds: Annotated[
        int, typer.Option(min=0, help="With --watch: stop after this many rounds (0: at Ctrl-C).")
    ] = 0,
    as_json: AsJson = False,
) -> None:
    """What served boards are doing now: health, board, totals, leases, jobs, deployments.

    A block per server (the servers asked at once); asked with a viewer's calls only,
    and a part a server refuses says why. --json prints one object per server, a line
    each. Exit 1 when a server cannot be reached, its board is not serving (a serial
    link down) or it does not describe its board to the caller (no token, say); the
    others are still shown. With --watch, when that is so at the last round."""
    for url in urls:  # a local board is refused before any server is asked
        server_address(url)
    problems = _round(urls, as_json) if watch_s is None else _watch(urls, as_json, watch_s, rounds)
    for line in problems:
        typer.echo(line, err=True)
    if problems:
        raise typer.Exit(1)


def _round(urls: list[str], as_json: bool) -> list[str]:
    """Asks every server and prints what they said; returns the problems that make the
    command exit 1."""
    problems = []
    with ThreadPoolExecutor(max_workers=min(len(urls), MAX_ASKED_AT_ONCE)) as pool:
        reports = list(pool.map(_asked, urls))  # at once: an unreachable one costs its wait once
    for k, (url, report) in enumerate(zip(urls, reports, strict=True)):
        if as_json:
            typer.echo(json.dumps(report))
        else:
            if k:
                typer.echo()
            _print(report)
        problem = _problem(report)
        if problem:
            # The block just printed says why a server was not reached: said once. The
            # JSON lines are for a program, and the reason is repeated here for a person.
            brief = "not reached (above)" if "error" in report and not as_json else problem
            problems.append(f"sidra status {url}: {brief}")
    return problems


def _watch(urls: list[str], as_json: bool, every_s: float, rounds: int) -> list[str]:
    """Rounds every ``every_s`` until Ctrl-C (or ``rounds`` of them); returns the last
    round's problems. On a terminal each round replaces the last on the screen, drawn
    at once when asked (no half-drawn screen while the servers answer)."""
    redraw = sys.stdout.isatty() and not as_json
    problems: list[str] = []
    done = 0
    try:
        while not rounds or done < rounds:
            started = time.monotonic()
            drawn = io.StringIO()
            with contextlib.redirect_stdout(drawn):
                problems = _round(urls, as_json)
            if redraw:  # the terminal cleared, as watch(1) does (ANSI: home, erase screen)
                typer.echo("\x1b[H\x1b[2J", nl=False)
            if not as_json:
                clock = time.strftime("%H:%M:%S")
                typer.echo(f"{clock}, every {every_s:g} s (Ctrl-C stops)" if redraw
                           else f"--- {clock}")  # fmt: skip
            sys.stdout.write(drawn.getvalue())
            sys.stdout.flush()
            if redraw:
                for line in problems:
                    typer.echo(line)
            done += 1
            if not rounds or done < rounds:
                time.sleep(max(0.0, every_s - (time.monotonic() - started)))
    except KeyboardInterrupt:
        typer.echo()
    return problems


def _asked(url: str) -> dict[str, Any]:
    """The status of the server at ``url``; ``{"server", "error"}`` when it cannot be
    reached."""
    try:
        with open_board(server_url(url)) as board:
            assert isinstance(board, RemoteBoard)  # grpc:// and grpcs:// open one
            return _report(board, url, board.health())
    except SidraError as exc:
        return {"server": url, "error": f"{type(exc).__name__}: {exc}"}


def _problem(report: dict[str, Any]) -> str | None:
    """Why ``report`` makes the command exit 1, if it does."""
    if "error" in report:
        return str(report["error"])
    if report["health"] != "SERVING":
        return f"the board is {report['health']}"
    if "error" in report["board"]:
        return _refusal(report["board"]["error"])
    return None


def _refusal(error: str) -> str:
    """A part's error as a person is told it: a refusal for want of a token says where a
    command takes its token from (sidra.cli.whoami.token_hint)."""
    return error + missing_token_hint() if error.startswith(UNAUTHENTICATED) else error


UNAUTHENTICATED = f"{Unauthenticated.__name__}:"
"""How a part's error begins when the server wants a (valid) token for it."""


def _report(board: RemoteBoard, url: str, health: str) -> dict[str, Any]:
    def description() -> Part:
        try:
            info, stats = board.info, board.stats()
        except BoardUnavailable as exc:
            if exc.link_down is None:
                raise
            # The board is out of reach, but the server says what became of its link.
            return {"error": f"{type(exc).__name__}: {exc}", "link_down": asdict(exc.link_down)}
        link = None if stats.link is None else asdict(stats.link)
        return {
            "info": asdict(info), "stats": totals(stats), "link": link,
            "instance_id": board.instance_id,
        }  # fmt: skip

    def jobs() -> Part:
        found = board.jobs.list(states=("running", "queued"))
        return {
            state: [_job(j) for j in found if j.state == state] for state in ("running", "queued")
        }

    return {
        "server": url,
        "asked_unix_s": round(time.time(), 3),
        "health": health,
        "caller": _part(lambda: board.caller().as_dict()),
        "board": _part(description),
        "leases": _part(lambda: {"leases": [asdict(lease) for lease in board.leases()]}),
        "jobs": _part(jobs),
        "deployments": _part(
            lambda: {"deployments": [_deployment(d) for d in board.deployments.list()]}
        ),
    }


def _part(ask: Callable[[], Part]) -> Part:
    """``ask()``, or what refused it (the other parts are still asked)."""
    try:
        return ask()
    except SidraError as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def _job(job: JobInfo) -> dict[str, Any]:
    return {
        "job_id": job.job_id, "kind": job.kind, "principal": job.principal,
        "dataset": job.dataset, "step": job.step, "total": job.total,
        "tiles": list(job.tiles), "whole_board": job.whole_board, "priority": job.priority,
        "submitted_unix_s": job.submitted_unix_s, "message": job.message,
    }  # fmt: skip


def _deployment(d: Deployment) -> dict[str, Any]:
    check = d.last_check
    return {
        "name": d.name, "principal": d.principal, "tiles": list(d.tiles),
        "intact": d.intact, "protected": d.protected,
        "correlation": None if check is None else check.correlation,
        "checked_unix_s": None if check is None else check.checked_unix_s,
        "held": None if check is None else holds(check.correlation),
    }  # fmt: skip


def _print(report: dict[str, Any]) -> None:
    if "error" in report:
        typer.echo(f"server  {report['server']}: not reached: {report['error']}")
        return
    lines = [("server", f"{report['server']}: {report['health']}")]
    lines += _section("you", report["caller"], _caller_lines)
    said = _refused_for_token(report["caller"])
    lines += _board_lines(report["board"], said)
    tile_count = report["board"].get("info", {}).get("tile_count")
    lines += _section("leases", report["leases"], lambda p: _lease_lines(p["leases"], tile_count),
                      said)  # fmt: skip
    lines += _section("jobs", report["jobs"], _job_lines, said)
    lines += _section("deployments", report["deployments"],
                      lambda p: _deployment_lines(p["deployments"]), said)  # fmt: skip
    width = max(len(label) for label, _ in lines)
    for label, text in lines:
        typer.echo(f"{label:<{width}}  {text}")


def _section(
    label: str, part: Part, lines: Callable[[Part], list[str]], said: bool = False
) -> list[tuple[str, str]]:
    """``label`` beside the first of ``lines(part)`` (blank beside the rest), or beside
    what refused the part (``said``: a refusal for want of a token, said above once)."""
    texts = [_not_shown(part["error"], said)] if "error" in part else lines(part)
    return [(label if k == 0 else "", text) for k, text in enumerate(texts)]


def _not_shown(error: str, said: bool) -> str:
    if said and error.startswith(UNAUTHENTICATED):
        return "not shown: refused as above"
    return f"not shown: {_refusal(error)}"


def _refused_for_token(part: Part) -> bool:
    """Whether ``part`` (the caller's, asked first) was refused for want of a token: every
    other part then is too, and says so in a few words."""
    return str(part.get("error", "")).startswith(UNAUTHENTICATED)


def _caller_lines(part: Part) -> list[str]:
    caller, now = Caller(**part), time.time()
    warning = expiry_warning(caller, now)
    return [caller_text(caller, now)] + ([warning] if warning else [])


def _board_lines(part: Part, said: bool) -> list[tuple[str, str]]:
    if "error" in part:
        down = part.get("link_down")
        texts = _link_down_lines(down) if down else []
        return [("board", _not_shown(part["error"], said)),
                *[("link" if k == 0 else "", text) for k, text in enumerate(texts)]]  # fmt: skip
    info, stats = part["info"], part["stats"]
    return [
        ("board", f"{info['model']} {info['serial_number']} (firmware "
                  f"{info['firmware_version']}), {info['tile_count']} tiles x {info['rows']} x "
                  f"{info['cols']}, {info['g_min_us']:g}-{info['g_max_us']:g} µS"),
        ("totals", f"clock {stats['clock_s']:,.1f} s; {stats['mvm_passes']:,} MVM passes, "
                   f"{stats['cell_writes']:,} cell writes (most on one cell "
                   f"{stats['max_cell_writes']:,}); modeled {stats['time_ns']:,.0f} ns, "
                   f"{stats['energy_nj']:,.0f} nJ"),
        *([("link", _link_text(part["link"]))] if part.get("link") else []),
    ]  # fmt: skip


def _link_text(link: dict[str, Any]) -> str:
    """A serial board's link at a glance: up, traffic, what the line damaged or lost, and
    the frame size (lowered on a line that damages long frames: a cable going bad)."""
    return f"{'up' if link['up'] else 'DOWN'}; {_link_counts(link)}"


def _link_counts(link: dict[str, Any]) -> str:
    damaged = link["crc_errors"] + link["framing_errors"] + link["naks"]
    frames = f"frames up to {link['payload_limit']:,} B"
    moves = link["payload_changes"]
    if moves:
        frames += f" (moved {'once' if moves == 1 else f'{moves:,} times'} for the line's damage)"
    return (
        f"{link['exchanges']:,} exchanges, {damaged:,} attempts damaged, "
        f"{link['timeouts']:,} lost (resent after "
        f"{link.get('timeout_base_s', 0.0) * 1e3:,.0f} ms); {frames}"
    )


def _link_down_lines(down: dict[str, Any]) -> list[str]:
    """A board link that is down, as its server accounts for it (board.proto LinkDown):
    since when and why, what the server does to get the board back, and the link's
    counters when the driver keeps them."""
    since_unix_s = down["since_unix_s"]
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since_unix_s))
    lines = [
        f"DOWN since {since} ({_ago(since_unix_s)} ago): {down['reason']}",
        f"the server is {down['recovery']}",
    ]
    if down["link"] is not None:
        lines.append(_link_counts(down["link"]))
    return lines


def _lease_lines(leases: list[dict[str, Any]], tile_count: int | None) -> list[str]:
    """A line per holding session (its tiles together), as ``sidra leases`` lists them,
    then the tiles nobody leases (where a run given no tile goes; the board's size
    unknown: not said)."""
    if not leases:
        return ["none: every tile is free"]
    leased = {lease["tile"] for lease in leases}
    free = [t for t in range(tile_count or 0) if t not in leased]
    return [
        *_holder_lines(leases),
        *(
            [f"{'tile' if len(free) == 1 else 'tiles'} {', '.join(map(str, free))} free"]
            if free
            else []
        ),
    ]


def _holder_lines(leases: list[dict[str, Any]]) -> list[str]:
    return [
        f"{tiles_text(h.tiles, h.whole_board)}: {h.principal}"
        + (f" ({h.label})" if h.label else "") + f", {h.expires_in_s:.0f} s left unless renewed"
        for h in holders([TileLease(**lease) for lease in leases])
    ]  # fmt: skip


def _job_lines(part: Part) -> list[str]:
    running, queued = part["running"], part["queued"]
    if not running and not queued:
        return ["none running or queued"]
    lines = [
        f"running {j['job_id'][:8]} {j['kind']} on {j['dataset']} by {j['principal']}, "
        f"step {j['step']:,} of {j['total']:,}, {tiles_text(j['tiles'], j['whole_board'])}"
        for j in running
    ]
    lines += [
        f"queued  {j['job_id'][:8]} {j['kind']} on {j['dataset']} by {j['principal']}, "
        f"priority {j['priority']}, waiting {_ago(j['submitted_unix_s'])}, "
        f"{tiles_text(j['tiles'], j['whole_board'])}"
        for j in queued
    ]
    return lines


def _deployment_lines(deployments: list[dict[str, Any]]) -> list[str]:
    if not deployments:
        return ["none"]
    lines = []
    for d in deployments:
        state = "intact" if d["intact"] else "NOT INTACT (written over)"
        if d["protected"]:
            state += ", protected"
        if d["correlation"] is None:
            read = "never checked" if d["intact"] else "not checked since"
        else:
            held = "" if d["held"] else " NOT HELD"
            read = f"correlation {d['correlation']:.2f}{held} {_ago(d['checked_unix_s'])} ago"
        lines.append(
            f"{d['name']} by {d['principal']} on {tiles_text(d['tiles'])}: {state}; {read}"
        )
    return lines


def _ago(unix_s: float) -> str:
    """How long ago ``unix_s`` was, in the largest unit that keeps it readable."""
    seconds = max(0.0, time.time() - unix_s)
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"
