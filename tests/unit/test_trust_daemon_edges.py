"""Daemon edges without a daemon: a busy ``/system/df`` asked again, registry timeouts retried,
``pull: always`` lookups sending exactly a pull's credentials, and a ``max_total`` budget a
daemon cannot measure refused."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import docker
import pytest
import requests

from reconciler.daemon.docker_engine import DockerEngine
from reconciler.daemon.host import DaemonRefused, DiskUsageBusy, DiskUsageReport, PullStreamFailed
from reconciler.daemon.pulling import EventKind, FailureKind, Puller, PullEvent, classify
from reconciler.daemon.registry_auth import load_registry_auth
from reconciler.errors import DiskUsageError, ExitCode
from reconciler.execution.executor import Executor
from reconciler.flows import plan_host as plan_host_module
from reconciler.flows.host_facts import read_host_facts, read_remote_digests
from reconciler.flows.plan_host import PlanOptions, plan_host
from reconciler.loading.loader import load_manifest_text
from reconciler.model.inventory import Inventory
from reconciler.model.report import Outcome
from reconciler.planning.images import plan_changes

from ..fake_daemon import FakeDockerHost

BUSY = "a disk usage operation is already running"
DF = {"LayersSize": 1234, "Images": [{"Id": "sha256:aa", "SharedSize": 5}]}


def api_error(status: int, explanation: str) -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = status
    return docker.errors.APIError(f"{status} Server Error", response=response, explanation=explanation)


class DfClient:
    """docker-py's ``df()`` answering ``answers`` in turn (an exception is raised), then the last one for ever."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls = 0

    def df(self) -> Any:
        self.calls += 1
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def version(self) -> Any:
        return {"Components": [{"Name": "Engine", "Version": "20.10.24"}]}  # Docker's, not Podman's


# --- item 7: a second /system/df ------------------------------------------------------------


def test_disk_usage_refused_while_another_runs_is_asked_again() -> None:
    client = DfClient(api_error(500, BUSY), api_error(500, BUSY), DF)
    usage = DockerEngine("unix:///d.sock", client).disk_usage()
    assert usage == DiskUsageReport(layers_size=1234, shared_sizes={"sha256:aa": 5})
    assert client.calls == 3


def test_disk_usage_busy_for_the_whole_deadline_is_a_temporary_failure_naming_the_daemon() -> None:
    client = DfClient(api_error(500, BUSY))
    with pytest.raises(DiskUsageBusy) as caught:
        DockerEngine("unix:///d.sock", client, timeout=0.3).disk_usage()
    assert caught.value.exit_code is ExitCode.TEMPORARY_FAILURE
    message = str(caught.value)
    assert message.startswith("The Docker daemon at unix:///d.sock refused GET /system/df ")
    assert "another disk usage request was running" in message and "try again later" in message
    assert client.calls > 2  # asked again and again, not once


def test_other_disk_usage_refusals_are_not_asked_again() -> None:
    client = DfClient(api_error(500, "boom"), DF)
    with pytest.raises(DaemonRefused) as caught:
        DockerEngine("unix:///d.sock", client).disk_usage()
    assert not isinstance(caught.value, DiskUsageBusy)
    assert client.calls == 1


ABSENT_OLD = """
version: 1
images:
  - name: reg.local/old
    state: absent
"""


def _removal(host: FakeDockerHost) -> Any:
    host.add_image(["reg.local/old:1"], size=100)
    inventory = Inventory(images=host.list_images(), containers=host.list_containers(), host=host.address)
    return plan_changes(load_manifest_text(ABSENT_OLD, "images.yaml", environ={}), inventory)


def test_a_busy_disk_usage_before_the_removals_leaves_out_the_measure_not_the_removals() -> None:
    host = FakeDockerHost()
    plan = _removal(host)
    asked = []

    def busy() -> int:
        asked.append(1)
        raise DiskUsageBusy("busy", 500, BUSY)

    report = Executor(host, parallelism=1).apply(plan, measure=busy)
    assert [(r.step.ref, r.outcome) for r in report.results] == [("reg.local/old:1", Outcome.DONE)]
    assert report.measured_freed is None
    assert asked == [1]  # not asked again after the removals: there is nothing to compare with


# --- item 12: registry timeouts -----------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        # What dockerd 20.10 said here when a registry's /v2/ ping went unanswered for 15 s:
        'Get "http://127.0.0.1:39235/v2/": context deadline exceeded',
        'Get "http://127.0.0.1:45945/v2/": net/http: request canceled (Client.Timeout exceeded while awaiting headers)',
        'Get "https://registry-1.docker.io/v2/": net/http: request canceled while waiting for connection '
        "(Client.Timeout exceeded while awaiting headers)",
        "net/http: timeout awaiting response headers",
        "read tcp 10.0.0.2:50000->10.0.0.1:443: i/o timeout",
        "error pulling image configuration: download failed after attempts=6: context deadline exceeded",
    ],
)
def test_registry_timeouts_relayed_by_the_daemon_are_transient(message: str) -> None:
    assert classify(message) is FailureKind.TRANSIENT


def test_a_timeout_does_not_make_not_found_worth_retrying() -> None:
    assert classify("manifest unknown: context deadline exceeded") is FailureKind.PERMANENT


def test_a_pull_that_timed_out_at_the_registry_once_is_retried_and_done() -> None:
    host = FakeDockerHost()
    host.add_to_registry("reg.local/app:1")
    timeout = 'Get "http://reg.local/v2/": net/http: request canceled (Client.Timeout exceeded while awaiting headers)'
    host.fail_pulls["reg.local/app:1"] = [PullStreamFailed(timeout, 500)]
    events: list[PullEvent] = []
    puller = Puller(deadline=30, on_event=events.append, sleep=lambda seconds: None, rand=lambda: 0.0)
    puller.pull(host, load_manifest_text(
        "version: 1\nimages:\n  - name: reg.local/app\n    tags: ['1']\n", "m.yaml", environ={}
    ).present()[0].tag_references()[0], None)
    kinds = [e.kind for e in events if e.kind is not EventKind.PROGRESS]
    assert kinds == [EventKind.START, EventKind.RETRY, EventKind.DONE]
    assert host.inspect_image("reg.local/app:1") is not None


# --- item 9: pull: always takes exactly a pull's credentials --------------------------------------


class RecordingHost(FakeDockerHost):
    """The fake, noting the X-Registry-Auth header each lookup and each pull was given."""

    def __init__(self) -> None:
        super().__init__()
        self.lookup_headers: list[str | None] = []
        self.pull_headers: list[str | None] = []

    def registry_digest(self, reference: str, auth_header: str | None) -> str | None:
        self.lookup_headers.append(auth_header)
        return super().registry_digest(reference, auth_header)

    def pull(self, name: str, tag_or_digest: str, platform: str | None, auth_header: str | None,
             deadline: float, on_chunk: Any) -> None:
        self.pull_headers.append(auth_header)
        super().pull(name, tag_or_digest, platform, auth_header, deadline, on_chunk)


ALWAYS = """
version: 1
images:
  - name: reg.local/app
    tags: ["1"]
    pull: always
"""

USER_PASSWORD = base64.b64encode(b"user:secret").decode()


@pytest.mark.parametrize(
    ("config", "credentials"),
    [
        ({"auths": {"reg.local": {"auth": "not base64!"}}}, None),  # the config is set aside
        ({"auths": {"other.example": {"auth": "!!"}, "reg.local": {"auth": USER_PASSWORD}}}, None),
        ({"credsStore": "reconcile-missing", "auths": {"reg.local": {}}}, None),  # helper not installed
        ({"credsStore": "reconcile-missing", "auths": {"reg.local": {"auth": USER_PASSWORD}}}, ("user", "secret")),
        ({"auths": {"reg.local": {"auth": USER_PASSWORD}}}, ("user", "secret")),
    ],
)
def test_pull_always_lookups_send_what_pulls_send(
    config: dict[str, Any], credentials: tuple[str, str] | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))  # no credential helper anywhere
    auth = load_registry_auth({})
    host = RecordingHost()
    host.add_to_registry("reg.local/app:1")
    manifest = load_manifest_text(ALWAYS, "images.yaml", environ={})
    assert read_remote_digests(host, manifest, auth) == {
        "reg.local/app:1": host.registry["reg.local/app:1"].digest
    }
    Puller(deadline=5, auth=auth).pull(host, manifest.present()[0].tag_references()[0], None)
    assert host.lookup_headers == host.pull_headers
    (header,) = host.lookup_headers
    if credentials is None:
        assert header is None
    else:
        assert header is not None
        sent = json.loads(base64.urlsafe_b64decode(header))
        assert (sent["username"], sent["password"]) == credentials


def test_a_broken_entry_of_another_registry_is_named_with_the_refusing_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"auths": {
        "other.example": {"auth": "!!"}, "reg.local": {"auth": "also not base64"},
    }}))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    auth = load_registry_auth({})
    assert "the `auths` entry for reg.local has" in (auth.auth_failure_hint("reg.local") or "")
    elsewhere = auth.auth_failure_hint("third.example") or ""
    assert "the `auths` entry for other.example has" in elsewhere
    assert "no credentials were sent to third.example either" in elsewhere


# --- item 11: a max_total budget the daemon cannot measure ---------------------------------------


class NoLayerSizes(FakeDockerHost):
    """A daemon whose disk usage gives no layer sizes (LayersSize 0), whatever the images take."""

    def disk_usage(self, known: object = None) -> DiskUsageReport:
        usage = super().disk_usage()
        return DiskUsageReport(layers_size=0, shared_sizes=usage.shared_sizes)


BUDGET = """
version: 1
retention:
  min_age: 0s  # min_age counts from arrival, and a first sight arrives now
  disk:
    max_total: 1kB
"""


def test_a_max_total_budget_is_refused_when_the_daemon_reports_no_layer_sizes(tmp_path: Path) -> None:
    host = NoLayerSizes(address="unix:///podman.sock")
    host.add_image(["reg.local/big:1"], size=5000)
    manifest = load_manifest_text(BUDGET, "images.yaml", environ={})
    with pytest.raises(DiskUsageError) as caught:
        read_host_facts(host, manifest, None, tmp_path, now=1e9)
    assert caught.value.exit_code is ExitCode.USAGE
    message = str(caught.value)
    assert "unix:///podman.sock" in message and "0 bytes of layers" in message and "5 kB" in message
    assert "max_total" in message


def test_plan_host_refuses_it_instead_of_no_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host = NoLayerSizes(address="unix:///podman.sock")
    host.add_image(["reg.local/big:1"], size=5000, created=1)
    monkeypatch.setattr(plan_host_module, "connect", lambda address, **how: host)
    manifest = load_manifest_text(BUDGET, "images.yaml", environ={})
    with pytest.raises(DiskUsageError, match=r"unix:///podman\.sock does not say"):
        plan_host(manifest, "unix:///podman.sock", PlanOptions(state_dir=tmp_path))
    # The same host measured: the budget applies, and the image is evicted.
    measured = FakeDockerHost(address="unix:///docker.sock")
    measured.add_image(["reg.local/big:1"], size=5000, created=1)
    monkeypatch.setattr(plan_host_module, "connect", lambda address, **how: measured)
    outcome = plan_host(manifest, "unix:///docker.sock", PlanOptions(state_dir=tmp_path))
    assert [(s.action.value, s.ref) for s in outcome.plan.steps] == [("remove", "reg.local/big:1")]


def test_no_layer_sizes_is_the_truth_on_a_host_whose_images_take_no_room(tmp_path: Path) -> None:
    host = NoLayerSizes()
    host.add_image(["reg.local/empty:1"], size=0)
    manifest = load_manifest_text(BUDGET, "images.yaml", environ={})
    facts = read_host_facts(host, manifest, None, tmp_path, now=1e9)
    assert facts.disk is not None and facts.disk.images_size == 0


def test_high_and_low_do_not_need_layer_sizes(tmp_path: Path) -> None:
    host = NoLayerSizes()
    host.daemon_identity = host.daemon_identity.__class__("ID", "podman", str(tmp_path))
    host.add_image(["reg.local/big:1"], size=5000)
    manifest = load_manifest_text(
        "version: 1\nretention:\n  disk:\n    high: 100%\n    low: 99%\n", "images.yaml", environ={}
    )
    facts = read_host_facts(host, manifest, None, tmp_path, now=1e9)
    assert facts.disk is not None and facts.disk.filesystem_size > 0


def test_a_measure_of_zero_before_removals_is_no_figure() -> None:
    host = FakeDockerHost()
    plan = _removal(host)
    report = Executor(host, parallelism=1).apply(plan, measure=lambda: 0)
    assert report.results[0].outcome is Outcome.DONE
    assert report.measured_freed is None  # not "freed 0 B"
