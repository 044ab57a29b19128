"""parse_reference against the sandbox daemon, which parses with distribution/reference.

For every text in the table the daemon answers three ways:

* the Engine API itself: ``POST /images/{id}/tag?repo=TEXT`` (docker-py ``api.tag``) makes
  the daemon run ``ParseNormalizedNamed`` on the whole text;
* the CLI: ``docker tag IMAGE TEXT`` parses TEXT on the client side with the same library,
  then sends the familiar name and the tag separately;
* for digest references, ``docker image inspect TEXT``: "No such image" means well-formed
  but absent, "invalid reference format" (and its siblings) means refused.

A text counts as accepted when it parses, whether or not the daemon then creates a tag
(it refuses to tag digest references and a repository named ``sha256``). Our parser must
accept exactly what the daemon accepts, except where it is stricter by design
(``STRICTER``) and where the daemon predates the current grammar (``newer_grammar``). After each tag the daemon made, the new ``RepoTags`` entry must equal our
``familiar()``. Every tag made here is removed again, without force.
"""

from __future__ import annotations

import os
import re
import subprocess
import tarfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from docker import APIClient
from docker.errors import APIError

from reconciler.model.reference import InvalidReference, Reference, parse_reference

DockerRun = Callable[..., "subprocess.CompletedProcess[str]"]

# Six lowercase characters, never all hex, in every name we tag: no tag of another image
# is ever moved onto ours.
U = "rv" + uuid.uuid4().hex[:4]
BASE_TAG = f"{U}-base:keep"

HEX64 = "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c"
SHA256 = f"sha256:{HEX64}"
SHA384 = "sha384:" + "ab" * 48
SHA512 = "sha512:" + HEX64 * 2
IDENTIFIER = re.compile(r"[a-f0-9]{64}", re.ASCII)

# What the daemon and the CLI say when distribution/reference or go-digest refuses a text.
PARSE_ERRORS = (
    "invalid reference format",
    "must be lowercase",
    "must not be more than 255 characters",
    "cannot specify 64-byte hexadecimal strings",
    "invalid checksum digest",
    "unsupported digest algorithm",
    "must have at least one component",
)
# The text parsed, but the daemon will not tag it.
DIGEST_REFUSED = "refusing to create a tag with a digest reference"
AMBIGUOUS_REFUSED = "refusing to create an ambiguous tag using digest algorithm as name"
PARSED_NOT_TAGGED = (DIGEST_REFUSED, AMBIGUOUS_REFUSED)
# `docker tag` sends the familiar name and the tag apart; when the familiar name is 64 hex
# digits ("<hex>:t", "docker.io/library/<hex>"), the daemon refuses that name alone as an id.
HEX_NAME_REFUSED = "cannot specify 64-byte hexadecimal strings"

# Bare digests: the daemon reads "sha512:<hex>" as repository "sha512" with a hex tag
# (and refuses to tag "sha256:<hex>" as ambiguous); parse_reference refuses all of them as
# "a digest without a repository name", as documented.
STRICTER = frozenset({SHA256, SHA384, SHA512})


def newer_grammar(text: str) -> bool:
    """Texts the current distribution/reference grammar accepts and Engine 20.10's refuses.

    Newer grammar reads an upper-case first component as a registry (``Foo/bar``) and
    accepts bracketed IPv6 registries (``[::1]:5000/x``); 20.10 predates both. A manifest
    follows the current grammar; an older daemon then refuses the step, and says so.
    """
    first, slash, _ = text.partition("/")
    if not slash:
        return False
    return first.startswith("[") or (first != first.lower() and "." not in first and ":" not in first)


def _cases() -> list[str]:
    a = "a"
    return [
        # Normalisation: docker.io, index.docker.io, library/.
        U,
        f"{U}:1.0",
        f"library/{U}",
        f"docker.io/{U}",
        f"docker.io/library/{U}",
        f"index.docker.io/{U}",
        f"index.docker.io/library/{U}",
        f"index.docker.io/{U}/x",
        f"docker.io/{U}/x",
        f"docker.io/library/{U}/x",
        f"{U}/x:t",
        f"{U}/a/b/c",
        f"docker.io:{U}",
        f"index.docker.io:{U}",
        f"{U}/library",
        # localhost.
        "localhost",
        "localhost:5000",
        f"localhost:{U}",
        f"localhost/{U}",
        f"localhost:5000/{U}",
        f"localhost:5000/{U}:t",
        f"LOCALHOST/{U}",
        f"Localhost:5000/{U}",
        f"localhost.localdomain/{U}",
        # Ports.
        f"example.com:5000/{U}",
        f"example.com:0/{U}",
        f"example.com:99999999/{U}",
        f"example.com:/{U}",
        f"example.com:abc/{U}",
        f"example.com:5000:6000/{U}",
        f"{U}.com:5000",
        f"127.0.0.1:5000/{U}",
        f"127.0.0.1/{U}",
        f"{U}:5000/x",
        # IPv6.
        f"[::1]:5000/{U}",
        f"[::1]/{U}",
        f"[2001:db8::1]:5000/{U}:t",
        "[::1]:5000",
        f"[fe80::1%eth0]:5000/{U}",
        f"::1/{U}",
        f"[::1]:5000/{U}@{SHA256}",
        # Upper case: domain, path, tag, digest.
        f"Example.com/{U}",
        f"EXAMPLE.COM:5000/{U}",
        f"example.com/{U}X",
        U.upper(),
        f"{U.upper()}/x",
        f"{U}/X",
        f"docker.io/{U}/X",
        f"{U}:LATEST",
        f"{U}@SHA256:{HEX64}",
        f"{U}@sha256:{HEX64.upper()}",
        f"Foo_{U}/x",
        # Separators in path components.
        f"{U}.a",
        f"{U}_a",
        f"{U}__a",
        f"{U}___a",
        f"{U}-a",
        f"{U}--a",
        f"{U}---a",
        f"{U}..a",
        f"{U}._a",
        f"{U}-.a",
        f"{U}_-a",
        f"{U}-_a",
        f"{U}.",
        f"{U}_",
        f"{U}-",
        f"_{U}",
        f"-{U}",
        f".{U}",
        f"{U}/a.b",
        f"{U}/a__b",
        f"{U}/a___b",
        f"{U}/_a",
        f"{U}/a-",
        # First components with a dot that are no host names.
        f"{U}_x.com/y",
        f"{U}-.com/y",
        f"-{U}.com/y",
        f"{U}..com/y",
        f"{U}.com./y",
        f"xn--n3h.{U}.com/y",
        f"{U}.a-b.com/y",
        f"a--b.{U}/y",
        f"{U}_x.com:8080/y",
        # Empty components.
        "",
        f"{U}/",
        f"/{U}",
        f"{U}//x",
        f"example.com//{U}",
        "example.com/",
        "/",
        f"{U}/x/",
        # Tag or digest alone; empty tag or digest.
        ":tag",
        f":{U}",
        f"@{SHA256}",
        f"{U}:",
        f"{U}@",
        f"{U}:@{SHA256}",
        f"{U}:t:u",
        f"{U}::t",
        # Tags.
        f"{U}:" + "t" * 128,
        f"{U}:" + "t" * 129,
        f"{U}:_",
        f"{U}:_" + "x" * 127,
        f"{U}:.x",
        f"{U}:-x",
        f"{U}:x.",
        f"{U}:x-",
        f"{U}:X.Y-Z_0",
        f"{U}:a/b",
        f"{U}:a+b",
        f"{U}:" + "9" * 128,
        f"{U}:" + "_" * 128,
        # 64-hex names.
        HEX64,
        HEX64[:-1],
        HEX64 + "a",
        HEX64.upper(),
        f"{HEX64}:{U}",
        f"{U}/{HEX64}",
        f"docker.io/library/{HEX64}",
        f"{HEX64}@{SHA256}",
        # Digests of each algorithm, and wrong ones.
        f"{U}@{SHA256}",
        f"{U}@{SHA384}",
        f"{U}@{SHA512}",
        f"a@{SHA256}",
        f"{U}:t@{SHA256}",
        f"localhost:5000/{U}:t@{SHA512}",
        f"{U}@sha256:{HEX64[:-1]}",
        f"{U}@sha256:{HEX64}a",
        f"{U}@sha384:{HEX64}",
        f"{U}@{SHA384}a",
        f"{U}@sha512:{HEX64}",
        f"{U}@{SHA512[:-1]}",
        f"{U}@{SHA512}a",
        f"{U}@md5:{HEX64[:32]}",
        f"{U}@sha1:{HEX64[:40]}",
        f"{U}@sha256:{HEX64[:31]}",
        f"{U}@sha256:",
        f"{U}@sha256",
        f"{U}@{HEX64}",
        f"{U}@sha256:" + "g" * 64,
        f"{U}@{SHA256}@{SHA256}",
        f"{U}@{SHA256}:t",
        f"{U}@sha256+b64:{HEX64}",
        f"{U}@foo.bar:{HEX64}",
        # Bare digests, and texts that only look like them.
        SHA256,
        SHA384,
        SHA512,
        f"sha256:{HEX64[:-1]}",
        f"sha512:{HEX64}",
        # Whitespace.
        f" {U}",
        f"{U} ",
        f"{U}\n",
        f"\t{U}",
        f"{U}:t ",
        f"{U} :t",
        f"{U}/ x",
        f"{U}@{SHA256}\n",
        f"{U}\u00a0",
        f"\u3000{U}",
        # Non-ASCII: Arabic-Indic, superscript and fullwidth digits, fullwidth and accented
        # letters, a zero-width space, the Kelvin sign (lower case: ASCII 'k').
        f"{U}ñ",
        f"ñ{U}/x",
        f"{U}:tëst",
        f"{U}:\u0661\u0662\u0663",
        f"{U}\u0661",
        f"{U}:\u00b2",
        f"\uff4e{U}",
        f"{U}.ëxample.com/x",
        f"example.com:\uff15\uff10\uff10\uff10/{U}",
        f"{U}:x\u200b",
        f"\u212a{U}/x",
        f"{U}/\u212a",
        f"Ë{U}/x",
        f"{U}@sha256:" + "\u0661" * 64,
        # Names near 255 characters, counted after normalisation (docker.io/library/ is 18).
        U + a * (237 - len(U)),
        U + a * (238 - len(U)),
        f"docker.io/library/{U}" + a * (237 - len(U)),
        f"index.docker.io/{U}" + a * (237 - len(U)),
        f"index.docker.io/{U}" + a * (238 - len(U)),
        f"{U}/" + a * (255 - len("docker.io/") - len(U) - 1),
        f"{U}/" + a * (256 - len("docker.io/") - len(U) - 1),
        f"example.com/{U}" + a * (243 - len(U)),
        f"example.com/{U}" + a * (244 - len(U)),
        f"example.com/{U}" + a * (250 - len(U)),  # path alone under 255
        U + a * (237 - len(U)) + ":" + "t" * 128 + "@" + SHA512,
        f"{U}/" + "/".join(["a"] * 100),
        # Not references at all.
        f"https://example.com/{U}",
        f"example.com/{U}?x",
        f"{U}#x",
        f"{U}*",
        f"{U}$",
    ]


CASES = _cases()


def _case_id(text: str) -> str:
    return f"{CASES.index(text):03d}:{ascii(text)[1:-1][:50]}"


@dataclass(frozen=True)
class Answer:
    """One channel's answer: did the text parse, did a tag appear, what was said."""

    accepted: bool
    message: str
    new_tags: frozenset[str] = frozenset()


def _classify(message: str) -> bool:
    """Whether an error message means "parsed" (True) or "refused by the grammar" (False)."""
    if any(phrase in message for phrase in PARSED_NOT_TAGGED):
        return True
    if any(phrase in message for phrase in PARSE_ERRORS):
        return False
    pytest.fail(f"unexpected answer from docker: {message!r}")


def _removable(repo_tag: str) -> str:
    """A RepoTags entry in a form that `docker rmi` cannot read as a digest or an id."""
    name = repo_tag.rpartition(":")[0]
    return repo_tag if "/" in name else f"docker.io/library/{repo_tag}"


def _repo_tags(api: APIClient, image_id: str) -> frozenset[str]:
    return frozenset(api.inspect_image(image_id).get("RepoTags") or ())


def _untag_new(api: APIClient, image_id: str, before: frozenset[str]) -> frozenset[str]:
    """Remove the tags that appeared on the image since ``before``; return them."""
    new = _repo_tags(api, image_id) - before
    for repo_tag in new:
        api.remove_image(_removable(repo_tag))  # never force: only our own tags go
    return new


def _ask_api(api: APIClient, image_id: str, text: str) -> Answer:
    before = _repo_tags(api, image_id)
    try:
        api.tag(image_id, text)  # repo=TEXT, no tag: the daemon parses the whole text
    except APIError as exc:
        message = str(exc.explanation or exc)
        return Answer(_classify(message), message, _untag_new(api, image_id, before))
    return Answer(True, "tagged", _untag_new(api, image_id, before))


def _ask_cli(docker: DockerRun, api: APIClient, image_id: str, text: str) -> Answer:
    before = _repo_tags(api, image_id)
    try:
        result = docker("tag", "--", image_id, text, check=False)
    finally:
        new = _untag_new(api, image_id, before)
    if result.returncode == 0:
        return Answer(True, "tagged", new)
    message = result.stderr.strip()
    return Answer(_classify(message), message, new)


def _ask_inspect(docker: DockerRun, text: str) -> Answer:
    result = docker("image", "inspect", "--", text, check=False)
    message = result.stderr.strip()
    assert result.returncode != 0, f"an image answers to {text!r}: {result.stdout[:200]}"
    if any(phrase in message for phrase in PARSE_ERRORS):
        return Answer(False, message)
    if "no such image" in message.lower():
        return Answer(True, message)
    pytest.fail(f"unexpected answer from docker image inspect: {message!r}")


def _ours(text: str) -> Reference | InvalidReference:
    try:
        return parse_reference(text)
    except InvalidReference as exc:
        return exc


@pytest.fixture(scope="module")
def image_id(
    docker: DockerRun, api: APIClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A one-layer image of our own, tagged BASE_TAG so that untagging never deletes it."""
    workdir: Path = tmp_path_factory.mktemp("reference-vs-daemon")
    payload = workdir / "payload.bin"
    payload.write_bytes(os.urandom(256))
    tarball = workdir / "rootfs.tar"
    with tarfile.open(tarball, "w") as tar:
        tar.add(payload, arcname=f"{U}.bin")
    docker("import", tarball, BASE_TAG)
    found = docker("image", "inspect", "-f", "{{.Id}}", BASE_TAG).stdout.strip()
    yield found
    _untag_new(api, found, frozenset({BASE_TAG}))
    api.remove_image(BASE_TAG)  # its last tag: the image goes with it


@pytest.fixture(scope="module")
def existing_tags(api: APIClient) -> frozenset[str]:
    """Every tag on the daemon before this module ran."""
    return frozenset(tag for image in api.images() for tag in image.get("RepoTags") or ())


def test_the_table_is_large_and_has_no_duplicates() -> None:
    assert len(CASES) >= 150
    assert len(set(CASES)) == len(CASES)


@pytest.mark.parametrize("text", CASES, ids=_case_id)
def test_parser_agrees_with_the_daemon(
    text: str, docker: DockerRun, api: APIClient, image_id: str, existing_tags: frozenset[str]
) -> None:
    ours = _ours(text)
    if isinstance(ours, Reference) and ours.digest is None and ours.familiar() in existing_tags:
        pytest.skip(f"{ours.familiar()} already exists on the daemon; tagging would move it")

    daemon = _ask_api(api, image_id, text)
    cli = _ask_cli(docker, api, image_id, text)
    context = f"{text!r}: ours={ours!s}; daemon={daemon.message!r}; cli={cli.message!r}"

    # The CLI parses with the same library as the daemon, and both make the same tag;
    # except that the CLI cannot send a familiar name of 64 hex digits on to the daemon.
    hex_name = any(IDENTIFIER.fullmatch(tag.rpartition(":")[0]) for tag in daemon.new_tags)
    if hex_name:
        assert HEX_NAME_REFUSED in cli.message and not cli.new_tags, context
    else:
        assert cli.accepted == daemon.accepted, context
        assert cli.new_tags == daemon.new_tags, context
    # The inspect route's {name:.*} does not match a newline: the router answers 404,
    # which the CLI reports as "No such image" without the daemon parsing anything.
    if "@" in text and "\n" not in text:
        inspect = _ask_inspect(docker, text)
        assert inspect.accepted == daemon.accepted, f"{context}; inspect={inspect.message!r}"

    if text in STRICTER:
        assert daemon.accepted and isinstance(ours, InvalidReference), context
        return
    if newer_grammar(text) and isinstance(ours, Reference):
        assert not daemon.accepted, context
        return
    assert isinstance(ours, Reference) == daemon.accepted, context
    if isinstance(ours, Reference):
        # The daemon tags neither digest references nor a repository named sha256.
        untaggable = ours.digest is not None or AMBIGUOUS_REFUSED in daemon.message
        expected = frozenset() if untaggable else frozenset({ours.familiar()})
        assert daemon.new_tags == expected, context


def test_every_tag_made_here_is_gone(
    api: APIClient, image_id: str, existing_tags: frozenset[str]
) -> None:
    assert _repo_tags(api, image_id) == {BASE_TAG}
    now = frozenset(tag for image in api.images() for tag in image.get("RepoTags") or ())
    assert not {tag for tag in now - existing_tags if U in tag} - {BASE_TAG}
