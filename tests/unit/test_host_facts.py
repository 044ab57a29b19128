"""Reading the facts: registry digests of ``pull: always`` tags are asked several at a time."""

from __future__ import annotations

import threading

from reconciler.flows.host_facts import read_remote_digests
from reconciler.loading.loader import load_manifest_text
from tests.fake_daemon import FakeDockerHost


def digest_of(reference: str) -> str:
    return "sha256:" + format(sum(map(ord, reference)), "064x")


class SlowRegistry(FakeDockerHost):
    """Every lookup waits until four are asked at once: one at a time, the barrier breaks."""

    def __init__(self) -> None:
        super().__init__()
        self.barrier = threading.Barrier(4, timeout=5)

    def registry_digest(self, reference: str, auth_header: str | None) -> str | None:
        self.barrier.wait()
        return digest_of(reference)


def test_registry_digests_are_asked_four_at_a_time() -> None:
    tags = ", ".join(f'"t{n}"' for n in range(8))
    manifest = load_manifest_text(
        f"version: 1\nimages:\n  - name: registry.example/app\n    pull: always\n    tags: [{tags}]\n", "m.yaml", {}
    )
    host = SlowRegistry()
    digests = read_remote_digests(host, manifest, None)
    assert sorted(digests) == sorted(f"registry.example/app:t{n}" for n in range(8))
    assert digests["registry.example/app:t3"] == digest_of("registry.example/app:t3")
