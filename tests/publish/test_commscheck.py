"""The comms check as a function of text: each rule names itself and what it wanted;
leaks block an external message and only warn for an internal one."""

from __future__ import annotations

import pytest

from playbook import redaction
from playbook.core.commscheck import check_message

GOOD = (
    "Some users may experience missing messages. We are restoring the affected records. "
    "Next update by 14:30 UTC."
)


def rules(text: str, **kw: object) -> dict[str, bool]:
    kw.setdefault("kind", "progress")
    kw.setdefault("status", "identified")
    result = check_message(text, **kw)  # type: ignore[arg-type]
    return {f.rule: f.blocks for f in result.findings}


def test_a_complete_update_passes() -> None:
    assert rules(GOOD) == {}


def test_a_missing_next_update_names_the_rule_and_the_sentence_it_wanted() -> None:
    result = check_message(
        "Some users may experience errors. We are investigating. We will post more soon.",
        kind="initial",
        status="investigating",
    )
    (finding,) = result.findings
    assert finding.describe() == (
        'next-update: say when the next update comes ("Next update by 14:30 UTC")'
    )
    assert result.blocked


def test_a_resolution_must_say_whether_data_was_lost_and_needs_no_next_update() -> None:
    text = "The issue affecting chat is resolved. We have restored every record."
    assert rules(text, kind="resolution", status="resolved") == {"data-loss": True}
    assert rules(text + " No data was lost.", kind="resolution", status="resolved") == {}


@pytest.mark.parametrize(
    ("leak", "rule"),
    [
        ("postgresql://app:s3cretpw@db.example.com/chat", "connection-string"),
        ("host=db.example.com password=s3cretpw dbname=chat", "connection-string"),
        ("redis://:s3cretpw@cache.example.com:6379/0", "connection-string"),
        ("the primary at 10.20.3.4:5432", "private-ip"),
        ("the replica at fd12:3456:789a::1", "private-ip"),
        ("the node at 169.254.10.1", "private-ip"),
        ("mongo-2.prod.internal", "internal-host"),
        ('Traceback (most recent call last):\n  File "app.py", line 3, in <module>', "stack-trace"),
        ("\tat com.example.Store(Store.java:42)", "stack-trace"),
    ],
)
def test_leaks_block_an_external_message_and_warn_an_internal_one(leak: str, rule: str) -> None:
    assert rules(f"{GOOD}\nCause:\n{leak}")[rule] is True
    assert rules(f"{GOOD}\nCause:\n{leak}", audience="internal")[rule] is False


def test_public_addresses_and_hosts_pass() -> None:
    assert rules(f"{GOOD} See https://status.example.com or 8.8.8.8.") == {}


def test_a_known_secret_blocks_wherever_it_stands() -> None:
    redaction.remember("tok-9f8e7d6c5b")
    try:
        assert rules(f"{GOOD} token tok-9f8e7d6c5b")["secret"] is True
    finally:
        redaction._forget_all()


def test_a_target_host_of_the_responder_blocks_even_as_one_label() -> None:
    assert rules(f"{GOOD} db-prod-3 is slow", internal_hosts=["db-prod-3"])["internal-host"]


def test_outage_warns_when_no_component_is_in_an_outage() -> None:
    text = GOOD.replace("missing messages", "an outage")
    assert rules(text, component_statuses={"chat": "degraded_performance"}) == {
        "outage-word": False
    }
    assert rules(text, component_statuses={"chat": "major_outage"}) == {}


def test_a_playbook_s_rules_replace_the_defaults() -> None:
    checks = {"rules": [{"id": "region", "wants": "name the region", "any": ["eu-", "us-"]}]}
    assert rules("Nothing useful.", checks=checks) == {"region": True}
    assert rules("Users in eu-west see errors.", checks=checks) == {}


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        *(
            (ip, "private-ip")
            for ip in (
                "10.000.000.005",
                "192.168.001.010",
                "010.0.0.5",
                "0177.0.0.1",
                "0x0a000005",
                "0xa.0.0.5",
            )
        ),
        *(
            (name, "internal-host")
            for name in ("localhost", "localhost:5432", "db.test", "x.invalid", "db.example")
        ),
        *(
            (trace, "stack-trace")
            for trace in (
                "Error: boom\n    at f (/app/x.js:10:5)\n    at Module._compile (node:internal/x:1:2)",
                "System.Exception: boom\n   at A.B() in C:\\src\\x.cs:line 42",
                "x.rb:12:in 'load': boom\n\tfrom x.rb:3:in `<main>'",
                "goroutine 1 [running]:\nmain.main()\n\t/app/main.go:12 +0x1d",
                "thread 'main' panicked at src/main.rs:2:5",
            )
        ),
        *(
            (conn, "connection-string")
            for conn in ("PGPASSWORD=Hunter2pw", "Password: Hunter2pw", "app:Hunter2pw@db:5432")
        ),
        (r"10\.0\.0\.5", "private-ip"),
        ("postgres&#58;//app&#58;Hunter2pw&#64;db.example.com/x", "connection-string"),
    ],
)
def test_every_spelling_a_reader_resolves_blocks(text: str, rule: str) -> None:
    assert rules(f"{GOOD} Seen: {text}").get(rule) is True


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("167772165", "10.0.0.5"),
        ("2130706433", "127.0.0.1"),
        ("10.5", "10.0.0.5"),
        ("127.1", "127.0.0.1"),
    ],
)
def test_a_number_that_only_a_resolver_reads_as_an_address_warns_without_blocking(
    text: str, address: str
) -> None:
    # "latency 10.5 s" or "167772165 rows" must not stop an update at 3 a.m.; the
    # responder sees what it could be read as and decides.
    result = check_message(f"{GOOD} Seen: {text}", kind="progress", status="identified")
    assert not result.blocked
    assert [f.message for f in result.warnings] == [
        f"{text!r} reads as a private address ({address})"
    ]


def test_a_targets_host_in_a_zero_padded_spelling_blocks() -> None:
    assert rules(f"{GOOD} 203.000.113.009", internal_hosts=["203.0.113.9"])["internal-host"]


def test_numbers_times_and_dates_are_not_addresses() -> None:
    text = f"{GOOD} It took 20 minutes and 3 retries; version 2.4.1. Time: 2026-11-29 09:27 UTC."
    assert rules(text) == {}


def test_a_leak_only_in_also_blocks_and_content_rules_read_the_text() -> None:
    assert rules(GOOD, also=["orders-db 10.0.0.5 down"]) == {"private-ip": True}


@pytest.mark.parametrize(
    "trace",
    [
        "Error: connect ECONNREFUSED\n    at TCPConnectWrap.afterConnect [as oncomplete] "
        "(node:net:1555:16)",
        "at process.processTicksAndRejections (node:internal/process/task_queues:95:5)",
        "java.lang.IllegalStateException: pool exhausted at com.acme.db.Pool.get(Pool.java:88) "
        "at com.acme.api.Orders.list(Orders.java:41)",
        "Caused by: org.postgresql.util.PSQLException: FATAL: too many connections",
        "Caused by: LowLevelException: boom",
        "at java.base/java.lang.Thread.run(Thread.java:833)",
        "at sun.nio.ch.Net.connect0(Native Method)",
        "panic: runtime error: index out of range [5] with length 3",
        "panic: boom [recovered]",
        "Seen: panic: runtime error: invalid memory address or nil pointer dereference",
    ],
)
def test_every_runtime_s_documented_trace_shape_blocks(trace: str) -> None:
    assert rules(f"{GOOD}\nSeen:\n{trace}").get("stack-trace") is True


@pytest.mark.parametrize(
    "prose",
    [
        "at 10:30 (UTC) we restarted the primary",
        "the panic buttons on the dashboard were pressed",
        "the errors were caused by a migration",
        "Caused by: a migration that locked the orders table",
        "Caused by: the config.yaml change at 09:10 UTC",
        "we met at noon (see the incident channel) and at 14:00 (CET)",
        "Node node:3 of the cluster is back",
    ],
)
def test_status_prose_that_resembles_a_trace_passes(prose: str) -> None:
    assert rules(f"{GOOD} {prose}.") == {}
