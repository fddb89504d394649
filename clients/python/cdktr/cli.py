"""``python3 -m cdktr`` (also installed as ``cdktr-py``): ask the principal whether it answers,
trigger a run, list runs. The Python counterpart of the ``cdktr`` command's ``run`` and ``runs``
(docs/cli.md), for machines that have Python and pyzmq but no Node.

Exit codes: 0 success; 1 the operation failed (principal unreachable, a refused trigger, an
unusable key file, a run that did not complete under ``--wait``); 2 bad usage (unknown option,
malformed ``--param``, a malformed address); 130 interrupted. Errors are one line on stderr
starting with ``error:``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from datetime import datetime
from typing import Any, Dict, List, Optional, Sequence, TextIO

from . import __version__
from .endpoints import parse_endpoints
from .errors import CdktrError, KeyFileError
from .keys import auth_disabled
from .principal import TERMINAL_RUN_STATUSES, Principal, new_idempotency_key

__all__ = ["main"]

#: How the command is called in messages: ``cdktr-py`` when started as that console script.
PROG = "cdktr-py" if os.path.basename(sys.argv[0] if sys.argv else "") == "cdktr-py" else "python3 -m cdktr"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: The trigger source of runs started by this command.
DEFAULT_SOURCE = "python-cli"
#: Per-request timeout (one attempt; idempotent requests get one more).
DEFAULT_TIMEOUT_MS = 3000
#: ``--wait`` gives up after this long without an answer from the principal.
WAIT_UNREACHABLE_S = 60.0

RUN_STATUSES = ("QUEUED", "ASSIGNED", "RUNNING", "COMPLETED", "FAILED", "CRASHED", "CANCELLED", "SKIPPED")

ENVIRONMENT_HELP = """\
environment:
  CDKTR_PRINCIPAL_ENDPOINTS  several principals sharing one database, host1:5561,host2:5561
                             (used when --principal is not given; requests follow the leader,
                             and a standby's NOT_LEADER is retried there)
  CDKTR_PRINCIPAL_HOST       principal host (default 127.0.0.1)
  CDKTR_PRINCIPAL_PORT       principal API port (default 5561)
  CDKTR_KEY_FILE             the client key file (used when --key-file is not given)
  CDKTR_KEYS_DIR             where local keys are (default ~/.cdktr/keys): without a key file,
                             the key is <CDKTR_KEYS_DIR>/local-operator.json when it exists
  CDKTR_AUTH                 off: plaintext, no key (only for a principal with CDKTR_AUTH=off)

A key file is the JSON made by `cdktr keys create` (or by the principal for its local keys):
name, role, publicKey, secretKey and the principal's public key it pins; mode 0600.

exit codes: 0 success, 1 failed (unreachable, refused, bad key file, run not COMPLETED under
--wait), 2 bad usage, 130 interrupted.
"""

# -- output -------------------------------------------------------------------------------------

_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def _escape_one(m: "re.Match[str]") -> str:
    c = m.group(0)
    if c == "\n":
        return "\\n"
    if c == "\r":
        return "\\r"
    code = ord(c)
    return f"\\x{code:02x}" if code < 0x80 else f"\\u{code:04x}"


def terminal_safe(text: Any) -> str:
    """``text`` with every control character but tab shown as an escape (``\\x1b``, ``\\n``,
    ``\\u009b``), so text from the principal cannot drive the terminal (as the ``cdktr`` CLI)."""
    return _CONTROL.sub(_escape_one, str(text))


def _parse_instant(iso: Optional[str]) -> Optional[float]:
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def format_instant(iso: Optional[str]) -> str:
    """An ISO instant as local time, ``2026-11-28 13:00:05``; ``-`` for none."""
    t = _parse_instant(iso)
    if t is None:
        return "-" if not iso else terminal_safe(iso)
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def format_duration(seconds: float) -> str:
    """``850ms``, ``12.3s``, ``4m05s``, ``2h03m``, ``3d04h`` (as the ``cdktr`` CLI)."""
    if seconds < 0:
        return "-"
    ms = seconds * 1000
    if ms < 1000:
        return f"{round(ms)}ms"
    if ms < 60_000:
        return f"{seconds:.1f}s"
    s = int(seconds)
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    m = s // 60
    if m < 1440:
        return f"{m // 60}h{m % 60:02d}m"
    h = m // 60
    return f"{h // 24}d{h % 24:02d}h"


def elapsed(start: Optional[str], end: Optional[str]) -> str:
    """Duration from ``start`` to ``end`` (now when None); ``-`` when not started."""
    a = _parse_instant(start)
    if a is None:
        return "-"
    b = _parse_instant(end) if end else time.time()
    return "-" if b is None else format_duration(b - a)


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, two spaces apart."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in [header, *rows]]
    return "\n".join(lines) + "\n"


# -- arguments ----------------------------------------------------------------------------------


class UsageError(Exception):
    """Bad usage found after argparse (exit code 2)."""


def _positive_int(maximum: int):
    def parse(text: str) -> int:
        if not re.fullmatch(r"\d+", text.strip()) or not 1 <= int(text) <= maximum:
            raise argparse.ArgumentTypeError(f"expected a whole number from 1 to {maximum}, got {text!r}")
        return int(text)

    return parse


def parse_params(items: Sequence[str]) -> Dict[str, str]:
    """``name=value`` arguments as run params. Values stay strings: the principal coerces them to
    each parameter's declared type (as ``cdktr run -p``). The first ``=`` splits.

    Raises:
        UsageError: an item without ``=``, with an empty name, or a name given twice.
    """
    out: Dict[str, str] = {}
    for item in items:
        name, eq, value = item.partition("=")
        name = name.strip()
        if not eq or name == "":
            raise UsageError(f"bad parameter {item!r}: write --param name=value (e.g. --param date=2026-11-28)")
        if name in out:
            raise UsageError(f"parameter `{name}` given twice: pass each --param name=value once")
        out[name] = value
    return out


def parse_principal(text: str) -> Dict[str, Any]:
    """``--principal``: ``host:port``, ``host``, ``:port``, ``[v6]:port``, or several principals
    ``host1:5561,host2:5561``; the keyword arguments of :class:`~cdktr.Principal`.

    Raises:
        UsageError: a malformed address.
    """
    t = text.strip()
    if "," in t:
        try:
            return {"endpoints": parse_endpoints(t)}
        except ValueError as e:
            raise UsageError(str(e).replace("CDKTR_PRINCIPAL_ENDPOINTS", "--principal")) from None
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d+))?|([^:\[\]]*)(?::(\d+))?", t.removeprefix("tcp://"))
    if m is None or t == "" or t == ":":
        raise UsageError(f"--principal: expected host:port (e.g. --principal 127.0.0.1:5561), got {text!r}")
    host = m.group(1) or m.group(3) or None
    port_text = m.group(2) or m.group(4)
    out: Dict[str, Any] = {}
    if host is not None:
        out["host"] = f"[{host}]" if m.group(1) else host
    if port_text is not None:
        port = int(port_text)
        if not 1 <= port <= 65535:
            raise UsageError(f"--principal: expected a port from 1 to 65535, got {port_text!r}")
        out["port"] = port
    return out


def _connection_options(suppress: bool) -> argparse.ArgumentParser:
    """The options of the connection, accepted before and after the command (the command's copy
    leaves unset options to the main parser's: ``default=SUPPRESS``)."""
    parser = argparse.ArgumentParser(add_help=False)
    g = parser.add_argument_group("connection")

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    g.add_argument(
        "--principal",
        metavar="HOST:PORT",
        default=default(None),
        help="the principal's API address (also HOST, :PORT, or HOST1:PORT,HOST2:PORT for several principals). "
        "Default: $CDKTR_PRINCIPAL_ENDPOINTS, else $CDKTR_PRINCIPAL_HOST:$CDKTR_PRINCIPAL_PORT, else 127.0.0.1:5561",
    )
    g.add_argument(
        "--key-file",
        metavar="PATH",
        default=default(None),
        help="the client key file. Default: $CDKTR_KEY_FILE, else <$CDKTR_KEYS_DIR or ~/.cdktr/keys>/local-operator.json "
        "when it exists, else no key (plaintext)",
    )
    g.add_argument(
        "--timeout-ms",
        metavar="MS",
        type=_positive_int(600_000),
        default=default(DEFAULT_TIMEOUT_MS),
        help=f"how long one request waits for its reply (default {DEFAULT_TIMEOUT_MS})",
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python3 -m cdktr``."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Talk to a cdktr principal: check it answers, trigger a workflow run, list runs.",
        epilog="examples:\n"
        f"  {PROG} ping\n"
        f"  {PROG} run etl.daily --param date=2026-11-28 --key etl-2026-11-28\n"
        f"  {PROG} run hello --wait\n"
        f"  {PROG} runs --workflow etl.daily --limit 5\n\n" + ENVIRONMENT_HELP,
        formatter_class=formatter,
        parents=[_connection_options(False)],
    )
    parser.add_argument("--version", action="version", version=f"cdktr (Python client) {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    connection = _connection_options(True)

    ping = commands.add_parser(
        "ping",
        help="check that the principal answers; print its id, version, role and the key used",
        description="Ask the principal for its id, version, health and role (leader or standby),\n"
        "and show the key this client proved.",
        epilog=ENVIRONMENT_HELP,
        formatter_class=formatter,
        parents=[connection],
    )
    ping.add_argument("--json", action="store_true", help="print the ping reply as JSON")

    run = commands.add_parser(
        "run",
        help="trigger a workflow run and print its id",
        description="Trigger a run of WORKFLOW (source python-cli) and print its run id on the first\n"
        f"line of stdout, so RUN=$({PROG} run etl) works.",
        epilog=ENVIRONMENT_HELP,
        formatter_class=formatter,
        parents=[connection],
    )
    run.add_argument("workflow", metavar="WORKFLOW", help="the workflow id")
    run.add_argument(
        "-p",
        "--param",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="a run parameter, repeatable; the principal coerces the value to the parameter's type "
        "and refuses unknown or missing required parameters",
    )
    run.add_argument(
        "--key",
        metavar="IDEMPOTENCY_KEY",
        help="idempotency key: triggering again with the same key returns the first run and starts nothing "
        "(default: a fresh key, reused if the request is retried)",
    )
    run.add_argument("--source", default=DEFAULT_SOURCE, help=f"the run's trigger source (default {DEFAULT_SOURCE})")
    run.add_argument(
        "--wait",
        action="store_true",
        help="wait for the run to end, printing its state changes; exit 0 only if it COMPLETED",
    )
    run.add_argument("--json", action="store_true", help="print the trigger reply {runId, duplicate, skipped, status}")

    runs = commands.add_parser(
        "runs",
        help="list the latest runs, newest first",
        description="The latest runs, newest first: id, workflow, state, source, the key that triggered\n"
        "it, creation time, duration. A trigger key sees only the runs it triggered.",
        epilog=ENVIRONMENT_HELP,
        formatter_class=formatter,
        parents=[connection],
    )
    runs.add_argument("-w", "--workflow", metavar="WORKFLOW", help="only this workflow")
    runs.add_argument(
        "-s", "--status", metavar="S[,S...]", help=f"only these states, comma-separated: {', '.join(RUN_STATUSES)}"
    )
    runs.add_argument("--source", help="only runs from this trigger source")
    runs.add_argument(
        "-n", "--limit", metavar="N", type=_positive_int(100_000), default=20, help="at most N runs (default 20)"
    )
    runs.add_argument("--json", action="store_true", help="print one JSON array of run records")
    return parser


# -- commands -----------------------------------------------------------------------------------


class Cli:
    """One invocation: the parsed arguments, the output streams and the principal client."""

    def __init__(self, args: argparse.Namespace, out: TextIO, err: TextIO) -> None:
        self.args = args
        self.out = out
        self.err = err
        self._principal: Optional[Principal] = None

    def principal(self) -> Principal:
        """The client, made on first use.

        Raises:
            UsageError: a malformed --principal or CDKTR_PRINCIPAL_* variable.
            KeyFileError: the key file cannot be used.
        """
        if self._principal is None:
            where = parse_principal(self.args.principal) if self.args.principal is not None else {}
            try:
                self._principal = Principal(
                    timeout_ms=self.args.timeout_ms,
                    key=self.args.key_file,
                    **where,
                )
            except ValueError as e:
                raise UsageError(str(e)) from None
        return self._principal

    def close(self) -> None:
        if self._principal is not None:
            self._principal.close()

    def print(self, line: str = "") -> None:
        self.out.write(line + "\n")
        self.out.flush()

    def unreachable(self, e: CdktrError) -> str:
        """The line for a principal that does not answer: where, and what to check."""
        p = self._principal
        where = ", ".join(p.endpoints) if p is not None else "the configured address"
        key = p.client_key if p is not None else None
        if auth_disabled():
            hint = ""  # plaintext on purpose: nothing to say about keys
        elif key is None:
            hint = (
                "; a principal with authentication on answers only enrolled keys, and this client has none: "
                "set CDKTR_KEY_FILE (or --key-file) to a key file made with `cdktr keys create`, or run where "
                "the principal made its keys (same HOME or CDKTR_KEYS_DIR)"
            )
        else:
            origin = f" from {key.path}" if key.path is not None else ""
            hint = (
                f"; if one runs there, it does not know key `{key.name}`{origin} "
                "(not enrolled, revoked, or made for another principal)"
            )
        return (
            f"no principal answered at {where} (timeout {self.args.timeout_ms} ms): start one with "
            "`cdktr start principal` (or point at it with --principal HOST:PORT, CDKTR_PRINCIPAL_ENDPOINTS, "
            f"CDKTR_PRINCIPAL_HOST, CDKTR_PRINCIPAL_PORT){hint}"
        )

    # ping

    def ping(self) -> int:
        p = self.principal()
        reply = p.request("ping")
        if self.args.json:
            self.print(json.dumps(reply))
            return EXIT_OK
        r = {k: terminal_safe(v) for k, v in reply.items() if isinstance(v, (str, int, float))}
        self.print(f"principal {r.get('principalId', '?')} (version {r.get('version', '?')}) at {p.last_endpoint}")
        role = reply.get("role", "leader")
        leader = reply.get("leader")
        if role == "standby":
            at = leader.get("api") if isinstance(leader, dict) else None
            self.print(f"role:    standby (leader {terminal_safe(at) if at else 'unknown: an election is under way'})")
        else:
            self.print(f"role:    {terminal_safe(role)}")
        problems = reply.get("problems") or []
        health = r.get("health", "ok")
        self.print(f"health:  {health}" + (f" ({terminal_safe(', '.join(map(str, problems)))})" if problems else ""))
        identity = p.identity
        if identity is not None:
            origin = f", {p.client_key.path}" if p.client_key is not None and p.client_key.path else ""
            self.print(f"key:     {terminal_safe(identity.get('name'))} (role {terminal_safe(identity.get('role'))}{origin})")
        else:
            self.print("key:     none (plaintext)")
        return EXIT_OK

    # run

    def run(self) -> int:
        params = parse_params(self.args.param)
        p = self.principal()
        body: Dict[str, Any] = {
            "workflowId": self.args.workflow,
            # a key always: a fresh one unless given, so a retried request never starts a second run
            "idempotencyKey": self.args.key or new_idempotency_key(),
            "source": self.args.source,
        }
        if params:
            body["params"] = params
        reply = p.request("runWorkflow", body)
        if self.args.json and not self.args.wait:
            self.print(json.dumps(reply))
            return EXIT_OK
        run_id = terminal_safe(reply["runId"])
        self.print(run_id)
        if reply.get("duplicate"):
            self.err.write(f"(key {terminal_safe(self.args.key or '')} was used before: this is that run, nothing new was started)\n")
        if reply.get("skipped"):
            self.err.write(f"run {run_id} SKIPPED: the workflow allows no more active runs (overlap: skip)\n")
            return EXIT_FAILED if self.args.wait else EXIT_OK
        if not self.args.wait:
            return EXIT_OK
        try:
            return self.wait(reply["runId"])
        except KeyboardInterrupt:
            self.err.write(f"stopped watching; run {run_id} goes on (`cdktr cancel {run_id}` stops it)\n")
            return EXIT_INTERRUPTED

    def wait(self, run_id: str) -> int:
        """Poll the run until it ends, printing each state once; 0 only for COMPLETED."""
        p = self.principal()
        seen: Optional[str] = None
        silent_since: Optional[float] = None
        while True:
            try:
                run = p.request("getRun", {"runId": run_id})["run"]
                silent_since = None
            except CdktrError as e:
                if e.code not in ("TIMEOUT", "UNAVAILABLE") and not e.retryable:
                    raise
                now = time.monotonic()
                if silent_since is None:
                    silent_since = now
                    self.err.write("warning: the principal stopped answering; still waiting for the run\n")
                elif now - silent_since > WAIT_UNREACHABLE_S:
                    raise
                time.sleep(0.5)
                continue
            status = run["status"]
            if status != seen:
                seen = status
                stamp = format_instant(run.get("finishedAt") or run.get("startedAt") or run.get("createdAt"))
                detail = [terminal_safe(x) for x in (run.get("reason"), run.get("message")) if x]
                self.print(f"{stamp}  run {terminal_safe(status)}" + (f" ({', '.join(detail)})" if detail else ""))
            if status in TERMINAL_RUN_STATUSES:
                took = elapsed(run.get("startedAt") or run.get("createdAt"), run.get("finishedAt"))
                self.print(f"run {terminal_safe(run_id)} {terminal_safe(status)} in {took}")
                return EXIT_OK if status == "COMPLETED" else EXIT_FAILED
            time.sleep(0.3)

    # runs

    def runs(self) -> int:
        statuses: Optional[List[str]] = None
        if self.args.status is not None:
            statuses = []
            for raw in self.args.status.split(","):
                s = raw.strip().upper()
                if s == "":
                    continue
                if s not in RUN_STATUSES:
                    raise UsageError(f"unknown status {raw.strip()!r}: use one of {', '.join(RUN_STATUSES)}")
                statuses.append(s)
        p = self.principal()
        limit = self.args.limit
        found: List[Dict[str, Any]] = []
        cursor: Optional[str] = None
        while len(found) < limit:
            body: Dict[str, Any] = {"order": "desc", "limit": min(1000, limit - len(found))}
            for name, value in (("workflowId", self.args.workflow), ("status", statuses), ("source", self.args.source)):
                if value is not None:
                    body[name] = value
            if cursor is not None:
                body["cursor"] = cursor
            page = p.request("listRuns", body)
            found.extend(page.get("runs", []))
            cursor = page.get("nextCursor")
            if cursor is None or not page.get("runs"):
                break
        if self.args.json:
            self.print(json.dumps(found, indent=2))
            return EXIT_OK
        if not found:
            self.print("no runs")
            return EXIT_OK
        rows = [
            [
                terminal_safe(r.get("runId")),
                terminal_safe(r.get("workflowId")),
                terminal_safe(r.get("status")),
                terminal_safe(r.get("source")),
                terminal_safe(r.get("triggeredBy") or "-"),
                format_instant(r.get("createdAt")),
                elapsed(r.get("startedAt"), r.get("finishedAt")),
            ]
            for r in found
        ]
        self.out.write(render_table(["RUN", "WORKFLOW", "STATUS", "SOURCE", "BY", "CREATED", "DURATION"], rows))
        self.out.flush()
        return EXIT_OK


def main(argv: Optional[Sequence[str]] = None, out: Optional[TextIO] = None, err: Optional[TextIO] = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version (0) and usage errors (2)
        return int(e.code) if isinstance(e.code, int) else EXIT_USAGE
    if args.command is None:
        parser.print_help(err)
        return EXIT_USAGE
    cli = Cli(args, out, err)
    try:
        return {"ping": cli.ping, "run": cli.run, "runs": cli.runs}[args.command]()
    except UsageError as e:
        err.write(f"error: {terminal_safe(e)} (see `{PROG} {args.command} --help`)\n")
        return EXIT_USAGE
    except KeyFileError as e:
        err.write(f"error: {terminal_safe(e.message)}\n")
        return EXIT_FAILED
    except CdktrError as e:
        if e.code in ("TIMEOUT", "UNAVAILABLE"):
            err.write(f"error: {terminal_safe(cli.unreachable(e))}\n")
            return EXIT_FAILED
        err.write(f"error: {terminal_safe(e.code)}: {terminal_safe(e.message)}\n")
        return EXIT_USAGE if e.code in ("INVALID_PARAMS", "BAD_REQUEST") else EXIT_FAILED
    except KeyboardInterrupt:
        err.write("interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (`| head`): nothing more to say, and nothing to print it on
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silences the flush at exit
        except OSError:
            pass
        return EXIT_OK
    finally:
        cli.close()
