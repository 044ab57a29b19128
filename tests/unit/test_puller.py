"""The pull retry policy, the stream tally, credentials selection and the apply exit code: plain data."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from reconciler.cli.progress import plain_line
from reconciler.daemon.host import PullStreamFailed
from reconciler.daemon.pulling import (
    BACKOFF_CAP,
    EventKind,
    FailureKind,
    LayerTally,
    Puller,
    PullEvent,
    PullFailed,
    backoff_delay,
    classify,
    retry_after,
)
from reconciler.daemon.registry_auth import CredentialsError, RegistryAuth, load_registry_auth
from reconciler.errors import ExitCode
from reconciler.flows.outcomes import apply_exit_code
from reconciler.model.plan import Action, Step
from reconciler.model.reference import parse_reference
from reconciler.model.report import Outcome, Report, StepResult

from ..fake_daemon import FakeDockerHost

# --- classify ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        "received unexpected HTTP status: 503 Service Unavailable",
        "received unexpected HTTP status: 502 Bad Gateway",
        'Get "http://127.0.0.1:5000/v2/": read tcp 127.0.0.1:1->127.0.0.1:5000: read: connection reset by peer',
        "('Connection aborted.', RemoteDisconnected('Remote end closed connection without response'))",
        "unexpected EOF",
        "net/http: TLS handshake timeout",
        "dial tcp 10.0.0.1:443: i/o timeout",
    ],
)
def test_transient_failures_are_retried(message: str) -> None:
    assert classify(message) is FailureKind.TRANSIENT


@pytest.mark.parametrize(
    "message",
    [
        "toomanyrequests: You have reached your pull rate limit.",
        "received unexpected HTTP status: 429 Too Many Requests",
    ],
)
def test_rate_limits_are_told_apart(message: str) -> None:
    assert classify(message) is FailureKind.RATE_LIMITED


def test_status_codes_count_when_the_message_says_nothing() -> None:
    assert classify("something odd", status=429) is FailureKind.RATE_LIMITED
    assert classify("something odd", status=503) is FailureKind.TRANSIENT
    assert classify("something odd", status=400) is FailureKind.PERMANENT


@pytest.mark.parametrize(
    "message",
    [
        "manifest for 127.0.0.1:5000/a/b:1 not found: manifest unknown: manifest unknown",
        "pull access denied for x, repository does not exist or may require 'docker login'",
        "Head \"http://127.0.0.1:5000/v2/a/manifests/1\": no basic auth credentials",
        "unauthorized: authentication required",
        'Get "http://127.0.0.1:1/v2/": dial tcp 127.0.0.1:1: connect: connection refused',
        "Get \"https://nope.invalid/v2/\": dial tcp: lookup nope.invalid: no such host",
        "no matching manifest for linux/s390x in the manifest list entries",
        "something nobody has seen before",
    ],
)
def test_permanent_failures_are_not_retried(message: str) -> None:
    assert classify(message) is FailureKind.PERMANENT


def test_not_found_wins_over_a_transient_word_in_the_same_message() -> None:
    assert classify("manifest unknown after unexpected EOF") is FailureKind.PERMANENT


# --- delays ---------------------------------------------------------------------------


def test_backoff_doubles_from_one_second_with_jitter_in_the_upper_half() -> None:
    assert [backoff_delay(n, 0.0) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert [backoff_delay(n, 0.999999) for n in (1, 2, 3)] == pytest.approx([1.0, 2.0, 4.0], rel=1e-5)


def test_backoff_is_capped() -> None:
    assert backoff_delay(20, 0.999999) == pytest.approx(BACKOFF_CAP, rel=1e-5)
    assert backoff_delay(200, 0.5) <= BACKOFF_CAP


def test_retry_after_is_a_floor() -> None:
    assert backoff_delay(1, 0.5, asked=12.0) == 12.0
    assert backoff_delay(5, 0.999999, asked=1.0) == pytest.approx(16.0, rel=1e-5)


@pytest.mark.parametrize(
    ("message", "seconds"),
    [
        ("toomanyrequests: slow down; Retry-After: 12", 12.0),
        ("429 Too Many Requests (retry after 3.5)", 3.5),
        ("received unexpected HTTP status: 503 Service Unavailable", None),
    ],
)
def test_retry_after_is_read_from_the_message(message: str, seconds: float | None) -> None:
    assert retry_after(message) == seconds


# --- the stream tally -------------------------------------------------------------------


def test_tally_counts_layers_and_bytes_from_progress_chunks() -> None:
    tally = LayerTally()
    chunks: list[dict[str, Any]] = [
        {"status": "Pulling from t/web", "id": "1.0"},
        {"status": "Pulling fs layer", "progressDetail": {}, "id": "aaa"},
        {"status": "Already exists", "progressDetail": {}, "id": "bbb"},
        {"status": "Downloading", "progressDetail": {"current": 100, "total": 400}, "id": "aaa"},
        {"status": "Digest: sha256:00"},
    ]
    assert [tally.add(c) for c in chunks] == [False, True, True, True, False]
    middle = tally.event(EventKind.PROGRESS, "t/web:1.0", 1.0)
    assert (middle.layers_done, middle.layers_total, middle.bytes_done, middle.bytes_total) == (1, 2, 100, 400)
    tally.add({"status": "Download complete", "progressDetail": {}, "id": "aaa"})
    tally.add({"status": "Pull complete", "progressDetail": {}, "id": "aaa"})
    end = tally.event(EventKind.DONE, "t/web:1.0", 2.0)
    assert (end.layers_done, end.layers_total, end.bytes_done, end.bytes_total) == (2, 2, 400, 400)


def test_plain_lines_say_what_happens() -> None:
    assert plain_line(PullEvent(EventKind.START, "r/a:1")) == "pulling r/a:1"
    done = PullEvent(EventKind.DONE, "r/a:1", bytes_total=1_500_000, elapsed=3.21)
    assert plain_line(done) == "pulled r/a:1 (1.5 MB) in 3.2s"
    retry = PullEvent(EventKind.RETRY, "r/a:1", delay=2.2, reason="503 Service Unavailable")
    assert plain_line(retry) == "retrying r/a:1 in 2s: 503 Service Unavailable"
    assert plain_line(PullEvent(EventKind.PROGRESS, "r/a:1")) is None


# --- credentials ----------------------------------------------------------------------


def _decoded(header: str | None) -> dict[str, str]:
    assert header is not None
    return dict(json.loads(base64.urlsafe_b64decode(header)))


def test_environment_credentials_apply_to_every_registry_by_default() -> None:
    auth = RegistryAuth(env_user="ci", env_password="s3cret")
    assert _decoded(auth.header("127.0.0.1:5000"))["password"] == "s3cret"
    assert auth.for_registry("docker.io") == {"username": "ci", "password": "s3cret", "serveraddress": "docker.io"}


def test_environment_credentials_can_be_limited_to_one_registry() -> None:
    auth = RegistryAuth(env_user="ci", env_password="s3cret", env_host="https://registry.example.com/")
    assert auth.for_registry("registry.example.com") is not None
    assert auth.for_registry("docker.io") is None


def test_the_password_is_not_in_the_repr() -> None:
    assert "s3cret" not in repr(RegistryAuth(env_user="ci", env_password="s3cret"))


def test_half_set_environment_credentials_are_refused_without_echoing_them() -> None:
    with pytest.raises(CredentialsError) as caught:
        load_registry_auth({"RECONCILE_REGISTRY_PASSWORD": "s3cret"})
    assert "s3cret" not in str(caught.value)


# --- exit code ------------------------------------------------------------------------


def _result(outcome: Outcome, rate_limited: bool = False) -> StepResult:
    return StepResult(Step(Action.PULL, "r/a:1", "missing"), outcome, "x", rate_limited=rate_limited)


def test_exit_code_is_temporary_only_when_every_failure_was_a_rate_limit() -> None:
    done, limited = _result(Outcome.DONE), _result(Outcome.FAILED, rate_limited=True)
    assert apply_exit_code(Report(results=(done,))) is ExitCode.OK
    assert apply_exit_code(Report(results=(done, limited))) is ExitCode.TEMPORARY_FAILURE
    assert apply_exit_code(Report(results=(limited, _result(Outcome.FAILED)))) is ExitCode.INCOMPLETE
    assert apply_exit_code(Report(results=(limited, _result(Outcome.SKIPPED)))) is ExitCode.INCOMPLETE


def test_several_daemons_end_with_the_most_serious_exit_code() -> None:
    from reconciler.flows.outcomes import worst_exit_code

    assert worst_exit_code([]) is ExitCode.OK
    assert worst_exit_code([ExitCode.OK, ExitCode.CHANGES_PENDING]) is ExitCode.CHANGES_PENDING
    assert worst_exit_code([ExitCode.INCOMPLETE, ExitCode.TEMPORARY_FAILURE]) is ExitCode.INCOMPLETE
    assert worst_exit_code([ExitCode.STALE_PLAN, ExitCode.DAEMON_UNAVAILABLE, ExitCode.OK]) is ExitCode.DAEMON_UNAVAILABLE


# --- Podman's pull stream ------------------------------------------------------------


class _PodmanStreamHost(FakeDockerHost):
    """Pulls as Podman 4.3 streams them: layer statuses with an empty progressDetail, no "Pull complete"."""

    def pull(self, name: str, tag_or_digest: str, platform: str | None, auth_header: str | None,
             deadline: float, on_chunk: Any) -> None:
        chunks: list[dict[str, Any]] = []
        super().pull(name, tag_or_digest, platform, auth_header, deadline, chunks.append)
        for chunk in chunks:
            if chunk.get("status") == "Downloading":
                on_chunk({"status": "Pulling fs layer", "progressDetail": {}, "id": chunk["id"]})
                on_chunk({"status": "Download complete", "progressDetail": {}, "id": chunk["id"]})


def test_a_pull_stream_without_sizes_reports_the_pulled_image_size() -> None:
    host = _PodmanStreamHost()
    served = host.add_to_registry("reg.local/app:2")
    events: list[PullEvent] = []
    Puller(deadline=5.0, on_event=events.append).pull(host, parse_reference("reg.local/app:2"), None)
    done = events[-1]
    assert done.kind is EventKind.DONE
    assert done.bytes_total == served.size > 0
    assert "(0 B)" not in (plain_line(done) or "")


def test_podmans_manifest_unknown_says_not_found_may_mean_no_access() -> None:
    host = FakeDockerHost()
    host.fail_pulls["reg.local/app:9.9"] = PullStreamFailed(
        "initializing source docker://reg.local/app:9.9: reading manifest 9.9 in reg.local/app: manifest unknown"
    )
    with pytest.raises(PullFailed) as failed:
        Puller(deadline=5.0).pull(host, parse_reference("reg.local/app:9.9"), None)
    assert failed.value.kind is FailureKind.PERMANENT
    assert "may also say this when access is denied" in str(failed.value)


# --- what a pull cost ------------------------------------------------------------------


def test_a_pull_counts_the_bytes_it_downloaded_and_the_layers_already_there() -> None:
    host = FakeDockerHost()
    base = host.add_to_registry("reg.local/base:1", layers={"base": 3000})
    host.add_to_registry("reg.local/app:1", layers={"base": 3000, "app": 500})
    puller = Puller(deadline=5.0)
    first = puller.pull(host, parse_reference("reg.local/base:1"), None)
    assert (first.downloaded_bytes, first.layers_fetched, first.layers_present) == (base.size, 1, 0)
    assert not first.all_layers_present and first.seconds >= 0
    second = puller.pull(host, parse_reference("reg.local/app:1"), None)
    assert (second.downloaded_bytes, second.layers_fetched, second.layers_present) == (500, 1, 1)
    again = puller.pull(host, parse_reference("reg.local/app:1"), None)
    assert (again.downloaded_bytes, again.layers_present) == (0, 2) and again.all_layers_present


def test_an_up_to_date_pull_has_no_layer_chunks_and_downloaded_nothing() -> None:
    tally = LayerTally()
    for chunk in ({"status": "Pulling from t/web", "id": "1.0"}, {"status": "Digest: sha256:00"}):
        tally.add(chunk)
    assert tally.downloaded == 0 and not tally.fetched


def test_a_pull_stream_without_sizes_downloaded_an_unknown_amount() -> None:
    host = _PodmanStreamHost()
    host.add_to_registry("reg.local/app:2")
    stats = Puller(deadline=5.0).pull(host, parse_reference("reg.local/app:2"), None)
    assert stats.downloaded_bytes is None and not stats.all_layers_present


def test_a_pull_that_fetched_nothing_says_all_layers_were_already_present() -> None:
    host = FakeDockerHost()
    host.add_to_registry("reg.local/app:1", layers={"app": 500})
    events: list[PullEvent] = []
    puller = Puller(deadline=5.0, on_event=events.append)
    puller.pull(host, parse_reference("reg.local/app:1"), None)
    first = plain_line(events[-1]) or ""
    assert not events[-1].all_present and "already present" not in first
    puller.pull(host, parse_reference("reg.local/app:1"), None)
    again = plain_line(events[-1]) or ""
    assert events[-1].all_present and again.endswith(": all layers already present"), again
    assert "(0 B)" not in again
