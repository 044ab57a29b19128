"""The in-memory daemon keeps Docker's own rules: what it refuses, what it keeps, what it deletes."""

from __future__ import annotations

import pytest

from reconciler.daemon.host import (
    DockerHost,
    ImageConflict,
    ImageMissing,
    ProgressChunk,
    PullStreamFailed,
)
from reconciler.errors import DaemonUnavailable
from reconciler.model.reference import parse_reference

from ..fake_daemon import FakeDockerHost, sha

D1 = sha("d1")
D2 = sha("d2")


def as_host(host: DockerHost) -> DockerHost:
    """mypy checks here that the fake is a DockerHost."""
    return host


def tags(host: FakeDockerHost, image_id: str) -> tuple[str, ...]:
    details = host.inspect_image(image_id)
    assert details is not None, "the image is gone"
    return details.repo_tags


def refs(host: FakeDockerHost, image_id: str) -> tuple[str, ...]:
    details = host.inspect_image(image_id)
    assert details is not None, "the image is gone"
    return (*details.repo_tags, *details.repo_digests)


def test_the_fake_is_a_docker_host_and_reports_references_as_docker_spells_them() -> None:
    host = FakeDockerHost()
    image = host.add_image(["app:1", "docker.io/library/app:2", "reg.local:5000/team/app:3"], [f"app@{D1}"])
    assert as_host(host).address == host.address
    details = host.inspect_image("index.docker.io/library/app:1")
    assert details is not None and details.id == image
    assert details.repo_tags == ("app:1", "app:2", "reg.local:5000/team/app:3")
    assert details.repo_digests == (f"app@{D1}",)
    (record,) = host.list_images()
    assert {t.canonical() for t in record.tags} == {parse_reference(t).canonical() for t in details.repo_tags}
    assert set(host.refs) == {*(t.canonical() for t in record.tags), *(d.canonical() for d in record.digests)}


def test_deleting_the_last_tag_of_an_image_a_container_uses_is_refused_and_changes_nothing() -> None:
    host = FakeDockerHost()
    image = host.add_image(["app:1"], [f"app@{D1}"])
    host.add_container(image, name="web", state="exited")  # stopped containers count too
    with pytest.raises(ImageConflict) as refused:
        host.delete("app:1")
    assert refused.value.status == 409
    assert "container" in refused.value.explanation and "is using its referenced image" in refused.value.explanation
    assert refs(host, image) == ("app:1", f"app@{D1}")


def test_untagging_one_of_several_tags_only_untags_even_when_a_container_uses_the_image() -> None:
    host = FakeDockerHost()
    image = host.add_image(["app:1", "app:2"])
    host.add_container(image)
    assert host.delete("app:1") == ()
    assert tags(host, image) == ("app:2",)
    with pytest.raises(ImageConflict):
        host.delete("app:2")  # now the last one
    assert tags(host, image) == ("app:2",)


def test_the_last_tag_of_a_repository_takes_that_repositorys_digest_references_along() -> None:
    host = FakeDockerHost()
    image = host.add_image(["app:1", "other:1"], [f"app@{D1}", f"mirror@{D2}"])
    assert host.delete("app:1") == ()
    assert refs(host, image) == ("other:1", f"mirror@{D2}")  # app@... went with app's last tag


def test_a_digest_reference_stays_while_its_repository_keeps_a_tag() -> None:
    host = FakeDockerHost()
    image = host.add_image(["app:1", "app:2"], [f"app@{D1}"])
    host.delete("app:1")
    assert refs(host, image) == ("app:2", f"app@{D1}")


def test_deleting_a_digest_reference_removes_that_reference_only() -> None:
    host = FakeDockerHost()
    image = host.add_image(["app:1"], [f"app@{D1}", f"app@{D2}"])
    assert host.delete(f"app@{D1}") == ()
    assert refs(host, image) == ("app:1", f"app@{D2}")


def test_the_last_reference_deletes_the_image_and_an_absent_one_is_missing() -> None:
    host = FakeDockerHost()
    image = host.add_image(["app:1"], [f"app@{D1}"])
    assert host.delete("app:1") == (image,)
    assert host.inspect_image(image) is None
    assert host.list_images() == ()
    with pytest.raises(ImageMissing) as missing:
        host.delete("app:1")
    assert missing.value.status == 404


def test_an_image_pulled_by_digest_only_goes_with_its_last_digest_reference() -> None:
    host = FakeDockerHost()
    image = host.add_image(digests=[f"app@{D1}", f"mirror@{D2}"])
    assert host.delete(f"app@{D1}") == ()
    assert host.delete(f"mirror@{D2}") == (image,)


def test_a_container_keeps_even_a_digest_reference_when_the_image_has_one_reference() -> None:
    """moby's isSingleReference: one repository, at most one tag, counts as one reference."""
    host = FakeDockerHost()
    image = host.add_image(["app:1"], [f"app@{D1}"])
    host.add_container(image)
    with pytest.raises(ImageConflict):
        host.delete(f"app@{D1}")
    other = host.add_image(["app:2"], [f"mirror@{D2}"])
    host.add_container(other)
    assert host.delete("app:2") == ()  # another repository's reference keeps it: only untagged
    assert refs(host, other) == (f"mirror@{D2}",)
    with pytest.raises(ImageConflict):
        host.delete(f"mirror@{D2}")


def test_delete_by_id_is_refused_for_references_in_several_repositories_or_several_tags() -> None:
    host = FakeDockerHost()
    two_repos = host.add_image(["app:1", "other:1"])
    two_tags = host.add_image(["web:1", "web:2"])
    for image in (two_repos, two_tags):
        with pytest.raises(ImageConflict, match=r"must be forced.*referenced in multiple repositories"):
            host.delete(image)
    assert tags(host, two_repos) == ("app:1", "other:1")
    assert tags(host, two_tags) == ("web:1", "web:2")


def test_delete_by_id_takes_every_reference_of_one_repository_along() -> None:
    host = FakeDockerHost()
    image = host.add_image(["app:1"], [f"app@{D1}", f"app@{D2}"])
    assert host.delete(image[:19]) == (image,)  # an id prefix, as `docker rmi 0123abcd` takes
    assert host.refs == {}


def test_delete_by_id_is_refused_for_a_child_image_or_a_container() -> None:
    host = FakeDockerHost()
    parent = host.add_image(["base:1"])
    host.add_image(["app:1"], parent=parent)
    with pytest.raises(ImageConflict, match=r"cannot be forced.*dependent child images"):
        host.delete(parent)
    used = host.add_image()
    host.add_container(used, state="exited")
    with pytest.raises(ImageConflict, match=r"must be forced.*stopped container"):
        host.delete(used)
    running = host.add_image()
    host.add_container(running)
    with pytest.raises(ImageConflict, match=r"cannot be forced.*running container"):
        host.delete(running)
    assert host.inspect_image(parent) and host.inspect_image(used) and host.inspect_image(running)


def test_a_parent_stays_untagged_while_a_child_exists_and_goes_with_the_last_child() -> None:
    host = FakeDockerHost()
    parent = host.add_image(["base:1"], layers={"base": 100})
    child = host.add_image(["app:1"], parent=parent, layers={"app": 10})
    assert host.delete("base:1") == ()  # untagged; Docker keeps an image others are built on
    assert refs(host, parent) == ()
    assert [i.id for i in host.list_images()] == [child]  # `images?all=0` hides it, as Docker does
    assert host.list_images()[0].parent_id == parent
    assert host.delete("app:1") == (child, parent)  # noprune=False takes the untagged parent along
    assert host.images == {}


def test_a_parent_that_keeps_a_tag_or_a_container_is_not_pruned_with_its_child() -> None:
    host = FakeDockerHost()
    tagged = host.add_image(["base:1"])
    host.delete(host.add_image(["app:1"], parent=tagged))
    assert tags(host, tagged) == ("base:1",)
    used = host.add_image(digests=[f"base@{D1}"])
    child = host.add_image(["app:2"], parent=used)
    host.delete(f"base@{D1}")  # untagged only: it has a child
    host.add_container(used, state="exited")
    assert host.delete("app:2") == (child,)  # the stopped container keeps the parent
    assert host.inspect_image(used) is not None


def test_a_moved_tag_leaves_the_old_image_dangling_with_its_digest_references() -> None:
    host = FakeDockerHost()
    old = host.add_image(["app:1"], [f"app@{D1}"])
    new = host.add_image()
    host.tag(new, "app", "1")
    assert tags(host, new) == ("app:1",)
    assert refs(host, old) == (f"app@{D1}",)
    with pytest.raises(ImageMissing):
        host.tag(sha("nothing"), "app", "2")


def test_inspect_finds_tags_digest_references_ids_and_unambiguous_prefixes() -> None:
    host = FakeDockerHost()
    image = host.add_image(["app"], [f"app@{D1}"], image_id="sha256:" + "ab" * 32)
    host.add_image(image_id="sha256:" + "ac" * 32)
    for name in ("app", "app:latest", f"app@{D1}", image, image[7:], image[:12], "ab"):
        found = host.inspect_image(name)
        assert found is not None and found.id == image, name
    assert host.inspect_image("a") is None  # ambiguous
    assert host.inspect_image("app:2") is None
    assert host.image_history(sha("gone")) is None


def test_pull_lands_the_tag_and_a_digest_reference_and_moves_the_tag() -> None:
    host = FakeDockerHost(clock=lambda: 50.0)
    old = host.add_image(["reg.local/app:1"])
    served = host.add_to_registry("reg.local/app:1", layers={"base": 30, "app": 70})
    chunks: list[ProgressChunk] = []
    host.pull("reg.local/app", "1", None, None, 60.0, chunks.append)
    assert tags(host, served.id) == ("reg.local/app:1",)
    assert refs(host, served.id)[1] == f"reg.local/app@{served.digest}"
    assert refs(host, old) == ()  # the tag moved; the old image stays, dangling
    assert any(c.get("status") == "Pull complete" for c in chunks)
    assert host.events(0, 100).events[-1].action == "pull"
    assert host.registry_digest("reg.local/app:1", None) == served.digest
    host.pull("reg.local/app", served.digest, None, None, 60.0, chunks.append)
    assert refs(host, served.id) == ("reg.local/app:1", f"reg.local/app@{served.digest}")  # by digest: no tag
    assert [i.size for i in host.list_images() if i.id == served.id] == [100]


def test_pull_of_an_unknown_reference_fails_and_scripted_failures_fail_as_told() -> None:
    host = FakeDockerHost()
    with pytest.raises(PullStreamFailed, match="manifest unknown"):
        host.pull("app", "9", None, None, 60.0, lambda chunk: None)
    host.add_to_registry("app:1", architecture="arm64")
    with pytest.raises(PullStreamFailed, match="no matching manifest"):
        host.pull("app", "1", "linux/amd64", None, 60.0, lambda chunk: None)
    host.fail_pulls[parse_reference("app:1").canonical()] = [PullStreamFailed("502 Bad Gateway")]
    with pytest.raises(PullStreamFailed, match="502"):
        host.pull("app", "1", None, None, 60.0, lambda chunk: None)
    host.pull("app", "1", None, None, 60.0, lambda chunk: None)  # a list fails one attempt each
    assert host.inspect_image("app:1") is not None


def test_before_delete_lets_a_container_appear_just_before_the_daemon_decides() -> None:
    host = FakeDockerHost()
    image = host.add_image(["app:1"])

    def race(reference: str) -> None:
        host.add_container(image, name="late")

    host.before_delete = race
    with pytest.raises(ImageConflict):
        host.delete("app:1")
    assert tags(host, image) == ("app:1",)


def test_calls_are_counted_and_a_lost_daemon_answers_nothing() -> None:
    host = FakeDockerHost()
    host.add_image(["app:1"])
    host.list_images()
    host.list_images()
    host.inspect_image("app:1")
    assert host.session() is host
    assert (host.calls["list_images"], host.calls["inspect_image"], host.calls["delete"]) == (2, 1, 0)
    host.fail_calls["list_containers"] = DaemonUnavailable("gone")
    with pytest.raises(DaemonUnavailable):
        host.list_containers()
    host.lost = True
    with pytest.raises(DaemonUnavailable):
        host.delete("app:1")
    with pytest.raises(PullStreamFailed) as lost:
        host.pull("app", "1", None, None, 60.0, lambda chunk: None)
    assert lost.value.lost
    assert host.calls["delete"] == 1


def test_disk_usage_counts_a_shared_layer_once_and_as_shared_for_each_image() -> None:
    host = FakeDockerHost()
    parent = host.add_image(["base:1"], layers={"base": 100})
    child = host.add_image(["app:1"], parent=parent, layers={"app": 10})
    alone = host.add_image(["tool:1"], size=7)
    same_diff_elsewhere = host.add_image(["x:1"], layers={"other": 1, "base": 100})
    usage = host.disk_usage()
    assert usage.layers_size == 100 + 10 + 7 + 1 + 100  # "base" over another layer is another layer
    assert dict(usage.shared_sizes) == {parent: 100, child: 100, alone: 0, same_diff_elsewhere: 0}
    assert [i.size for i in host.list_images()] == [100, 110, 7, 101]
    assert all(i.shared_size is None for i in host.list_images())  # as GET /images/json gives them
    history = host.image_history(child)
    assert history is not None and [h.size for h in history if h.size] == [10, 100]
