"""Shell diagnostics: a program run from an argument list, inside the kernel's sandbox.

The argument list comes from the playbook with typed parameters in place of
``{$param: name}``, so a value is one argument whatever it contains: no quoting, no
globbing, no second command. A value that starts with ``-`` is refused unless the
parameter is declared an ``option`` (:func:`refuse_option_values`).

What the program may do is the kernel's decision, not a list of programs we trust
(:mod:`playbook.adapters.shell.sandbox_linux`): it reads the installed system but not homes
or temporary folders, writes only a private folder made for the run (and removed
after), reaches only the TCP ports the diagnostic declares, signals only its own
processes, and gets ``PATH``, ``LANG``, ``TZ`` and what the diagnostic declares, never
the responder's environment. A supervisor process
(:mod:`playbook.adapters.shell.supervisor`) ends the whole process tree at the
deadline, on cancel, and when the program exits. Output is read in chunks and capped in
bytes (:mod:`playbook.adapters.shell.runner`). An exit status the diagnostic did not list
in ``exit_codes`` is an error.

Where the kernel cannot sandbox (no Landlock, or too old an ABI) shell diagnostics are
refused, unless the responder opted in with ``[shell] allow_unsandboxed = true`` in
their own configuration, which arrives here as the run option
``allow_unsandboxed_shell``.

This module holds what is decided before anything runs; the sandbox and the runner are
imported when a diagnostic runs (about 7 ms: ctypes, subprocess), since the playbook model
reads :class:`ShellAdapter` on every load.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from playbook.adapters.base import (
    Adapter,
    DeadlineExceeded,
    Refused,
    RunContext,
    RunError,
    RunRequest,
    Sink,
)
from playbook.adapters.shell.action_model import ShellAction
from playbook.adapters.shell.models import ShellDiagnostic, parse_endpoint
from playbook.targets import is_local, scheme_of

if TYPE_CHECKING:
    from playbook.adapters.shell.remote import SshTarget
    from playbook.adapters.shell.sandbox_linux import Support

RESERVED_ENV = frozenset({"PATH", "HOME", "TMPDIR"})
"""Set by playbook for every run; a diagnostic cannot declare them."""


class ShellAdapter(Adapter):
    """Runs a program from its argv in the sandbox; stdout lines are the rows."""

    kind = "shell"
    description = "A program run from an argument list (no shell), in a kernel sandbox"
    diagnostic_model = ShellDiagnostic
    schemes = frozenset({"local", "ssh"})
    """``local:`` runs the program on this machine; ``ssh://user@host[:port]`` on that
    host through the system ``ssh`` (:mod:`playbook.adapters.shell.remote`)."""
    action_model = ShellAction  # carried out by playbook.adapters.shell.action

    def check(self, request: RunRequest) -> None:
        q = request.query
        argv = q.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise Refused("Refused: a shell diagnostic needs an argument list of strings.")
        env = q.get("env") or {}
        if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise Refused("Refused: a shell diagnostic's env maps names to text.")
        if "\x00" in "".join([*argv, *env, *env.values()]):
            raise Refused("Refused: an argument or environment value contains a NUL character.")
        reserved = sorted(RESERVED_ENV & set(env))
        if reserved:
            raise Refused(f"Refused: {reserved[0]} is set by playbook; a diagnostic cannot set it.")
        ports(q.get("network") or [])  # raises Refused on a malformed entry
        remote = _remote(request.uri)
        if remote is not None and q.get("network"):
            raise Refused(
                "Refused: `network:` is enforced on this machine only, and this diagnostic "
                "runs on another host over ssh, where nothing limits its network.",
                "Drop `network:` from the diagnostic, or run it on a local: target.",
            )
        codes = q.get("exit_codes", [0])
        if not isinstance(codes, list) or not all(
            isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in codes
        ):
            raise Refused("Refused: exit_codes lists whole numbers from 0 to 255.")
        extract_spec = q.get("extract")
        if extract_spec is not None and not isinstance(extract_spec, dict):
            raise Refused("Refused: a shell diagnostic's extract is a mapping.")
        _sandbox_or_opt_in(request)

    def run(self, request: RunRequest, ctx: RunContext, sink: Sink) -> dict[str, Any]:
        from playbook.adapters.shell.runner import (  # deferred: see the module's docstring
            MAX_LINE,
            MAX_OUTPUT,
            build_policy,
            child_env,
            private_folder,
            resolve_program,
            supervise,
        )

        support = _sandbox_or_opt_in(request)
        argv = [str(a) for a in request.query["argv"]]
        declared = dict(request.query.get("env") or {})
        allowed_ports = ports(request.query.get("network") or [])
        codes = list(request.query.get("exit_codes", [0]))
        spec = request.query.get("extract")
        # With an extractor the whole output is cut after the run, so lines are kept in
        # memory (the 4 MB output cap bounds them) rather than streamed to the evidence,
        # and a JSON document is not cut into 4,000-byte lines.
        out = Sink(None, keep=MAX_OUTPUT) if spec else sink
        room = MAX_OUTPUT if spec else request.limit
        max_line = MAX_OUTPUT if spec and spec.get("json") is not None else MAX_LINE
        remote = _remote(request.uri)
        readable: tuple[str, ...] = ()
        if remote is not None:  # the sandbox confines ssh itself: its port, its files
            allowed_ports, readable = (remote.port,), remote.readable
        with private_folder() as folder:
            policy = build_policy(
                folder,
                allowed_ports,
                support,
                unreadable=request.options.get("unreadable", ()),
                readable_files=readable,
            )
            if remote is None:
                env = child_env(declared, folder, policy)
                run_argv = argv
                program = resolve_program(argv[0], env["PATH"], policy)
            else:
                from playbook.adapters.shell.remote import ssh_argv

                env = child_env({}, folder, policy)  # the declared env goes to the remote side
                run_argv = ssh_argv(remote, argv, declared, ctx.connect_timeout)
                program = resolve_program(run_argv[0], env["PATH"], policy)
            outcome = supervise(program, run_argv, env, folder, policy, ctx, out, room, max_line)
        if outcome.escaped:
            raise RunError(
                f"{argv[0]} killed its supervisor: processes it started may still be running.",
                "This can happen only without the sandbox; look for them with `ps`.",
            )
        if outcome.error:
            raise RunError(f"{argv[0]} could not be started: {outcome.error}")
        if ctx.stopped:
            raise ctx.stop_error()
        if outcome.capped:
            raise RunError(
                f"{argv[0]} was stopped after {MAX_OUTPUT:,} bytes of output; the result "
                "is partial.",
                "Narrow what it prints (a filter, `tail -n`, a limit).",
            )
        if outcome.why == "deadline":
            raise DeadlineExceeded(f"The run passed its deadline of {ctx.timeout:g} s.")
        if outcome.signal is not None:
            raise RunError(f"{argv[0]} was killed by signal {outcome.signal}.")
        code = outcome.exit
        if code is None:  # the supervisor was stopped by someone else than this run
            raise RunError(f"{argv[0]} was stopped before it finished; the result is partial.")
        last_err = outcome.stderr.strip().splitlines()[-1][:300] if outcome.stderr.strip() else ""
        if remote is not None and code == 255 and code not in codes:
            raise RunError(
                f"ssh to {remote.host}:{remote.port} failed (status 255): "
                f"{last_err or 'no message'}.",
                "Check the target's user, key (?identity=) and known hosts (?known_hosts=); "
                "ssh runs in batch mode and never asks.",
            )
        if code not in codes:
            expected = ", ".join(map(str, codes))
            raise RunError(
                f"{argv[0]} exited with status {code}; the diagnostic expects {expected}.",
                last_err,
            )
        metrics: dict[str, Any] = {
            "exit_code": code,
            "count": outcome.lines,
            "lines": outcome.lines,
            "rows": min(outcome.lines, request.limit),
            "bytes": outcome.bytes,
            "sandboxed": policy.landlock,
        }
        if remote is not None:
            # "sandboxed" is then about the local ssh process; the program ran elsewhere.
            metrics["remote"] = True
        if outcome.lines_cut:
            metrics["lines_cut"] = outcome.lines_cut
        if outcome.killed:
            metrics["background_killed"] = outcome.killed
        if code != 0 and last_err:
            metrics["stderr"] = last_err
        if spec:
            metrics.update(_extracted(spec, out, sink, request.limit, ctx))
        return metrics


def _remote(uri: str) -> SshTarget | None:
    """The ssh target, or None for ``local:``.

    Raises:
        Refused: a scheme a shell diagnostic cannot honour (the service refused it
            already; a caller of the adapter alone is held to the same rule), or a
            malformed ssh target.
    """
    scheme = scheme_of(uri)
    if scheme == "local":
        if is_local(uri):
            return None
        raise Refused(
            # The scheme only, as below: the rest may name a host or hold a password.
            "Refused: a local target is exactly local: (no host, user or path; this "
            "machine only). Nothing was run.",
            "Use ssh://user@host[:port] to run on another machine.",
        )
    if scheme == "ssh":
        from playbook.adapters.shell.remote import parse

        return parse(uri)
    raise Refused(
        # Scheme names only: "local:" as a whole is remembered as a target URI, so
        # redaction would mask it in any message.
        f"Refused: a shell diagnostic takes targets of the schemes 'local' and 'ssh', "
        f"not {scheme!r}. Nothing was run."
    )


def _extracted(
    spec: dict[str, Any], out: Sink, sink: Sink, limit: int, ctx: RunContext
) -> dict[str, Any]:
    """The rows the extractor cut from the kept output, into the evidence; their numbers."""
    from playbook.adapters.shell.extract import extract
    from playbook.core.diagnostics import column_numbers

    lines = [row["line"] for row in out.rows]
    try:
        rows, numbers = extract(spec, lines, ctx)
    except RunError:  # (a deadline or a cancel too: DeadlineExceeded is a RunError)
        for line in lines[:limit]:  # the evidence shows the output it could not read
            sink.add({"line": line})
        raise
    for row in rows[:limit]:
        sink.add(row)
    return {"count": len(rows), "rows": min(len(rows), limit), **column_numbers(rows, numbers)}


# --------------------------------------------------------------------------- checks


def refuse_option_values(
    argv: list[Any], values: Mapping[str, object], options: Collection[str]
) -> None:
    """Refuse a parameter placed in ``argv`` whose value starts with ``-``, unless the
    parameter is declared an option: ``find DIR {$param: name}`` with ``-delete`` would
    otherwise turn data into an instruction. ``argv`` is the diagnostic's own list, with
    ``{"$param": name}`` where a parameter goes.

    Raises:
        Refused: naming the parameter; nothing was run.
    """
    for item in argv:
        if not isinstance(item, dict):
            continue
        name = item.get("$param")
        value = values.get(name) if isinstance(name, str) else None
        if value is not None and str(value).startswith("-") and name not in options:
            raise Refused(
                f"Refused: parameter {name!r} starts with '-', so the program would read "
                "it as an option.",
                "Give a value that does not start with '-'; a playbook that means it to "
                "be an option declares the parameter with `option: true`.",
            )


def ports(network: list[Any]) -> tuple[int, ...]:
    """The TCP ports of ``host:port`` entries (the kernel can enforce ports, not hosts).

    Raises:
        Refused: an entry is not ``host:port``.
    """
    found: list[int] = []
    for entry in network:
        try:
            _host, port = parse_endpoint(entry)
        except (TypeError, ValueError) as exc:
            raise Refused(f"Refused: network entry {entry!r}: {exc}.") from None
        found.append(port)
    return tuple(sorted(set(found)))


def _sandbox_or_opt_in(request: RunRequest) -> Support:
    from playbook.adapters.shell import sandbox_linux

    support = sandbox_linux.support()
    if support.complete or request.options.get("allow_unsandboxed_shell", False):
        return support
    raise Refused(
        "Refused: shell diagnostics run only inside the kernel's sandbox, and "
        + "; ".join(support.reasons)
        + ". Nothing was run.",
        "Without the sandbox the program could write files, reach the network and signal "
        "your processes. To run shell diagnostics anyway, set `allow_unsandboxed = true` "
        "under `[shell]` in your own playbook.toml (your config directory, not a "
        "playbook's folder).",
    )
