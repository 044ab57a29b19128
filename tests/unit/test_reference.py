"""Image references: grammar, normalisation and forms, after distribution/reference's tests."""

from __future__ import annotations

import string

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from reconciler.errors import ReconcilerError
from reconciler.model.reference import (
    InvalidReference,
    Reference,
    familiar_key,
    is_valid_digest,
    is_valid_tag,
    parse_reference,
    parse_repository,
    reference_key,
)

HEX64 = "dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c"
SHA256 = f"sha256:{HEX64}"
SHA384 = "sha384:" + "ab" * 48
SHA512 = "sha512:" + "f" * 128


# input -> (domain, path, tag, digest)
VALID = {
    "nginx": ("docker.io", "library/nginx", None, None),
    "nginx:1.23": ("docker.io", "library/nginx", "1.23", None),
    "library/nginx": ("docker.io", "library/nginx", None, None),
    "docker.io/nginx": ("docker.io", "library/nginx", None, None),
    "docker.io/library/nginx": ("docker.io", "library/nginx", None, None),
    "index.docker.io/nginx": ("docker.io", "library/nginx", None, None),
    "index.docker.io/library/nginx": ("docker.io", "library/nginx", None, None),
    "index.docker.io/docker/docker": ("docker.io", "docker/docker", None, None),
    "docker.io/library/foo/bar": ("docker.io", "library/foo/bar", None, None),
    "foo/bar": ("docker.io", "foo/bar", None, None),
    "store/foo/bar": ("docker.io", "store/foo/bar", None, None),
    "other/library": ("docker.io", "other/library", None, None),
    "test_com/foo": ("docker.io", "test_com/foo", None, None),
    "localhost/foo": ("localhost", "foo", None, None),
    "localhost:5000/foo/bar:tag": ("localhost:5000", "foo/bar", "tag", None),
    "localhost": ("docker.io", "library/localhost", None, None),
    "localhost:5000": ("docker.io", "library/localhost", "5000", None),
    "example.com:8080/a/b/c": ("example.com:8080", "a/b/c", None, None),
    "test:5000/repo": ("test:5000", "repo", None, None),
    "test.com:5000": ("docker.io", "library/test.com", "5000", None),
    "test.com/repo:tag": ("test.com", "repo", "tag", None),
    "sub-dom1.foo.com/bar/baz/quux:some-long-tag": (
        "sub-dom1.foo.com",
        "bar/baz/quux",
        "some-long-tag",
        None,
    ),
    "b.gcr.io/test.example.com/my-app:test.example.com": (
        "b.gcr.io",
        "test.example.com/my-app",
        "test.example.com",
        None,
    ),
    "xn--n3h.com/myimage:xn--n3h.com": ("xn--n3h.com", "myimage", "xn--n3h.com", None),
    "registry.io/foo/project--id.module--name.ver---sion--name": (
        "registry.io",
        "foo/project--id.module--name.ver---sion--name",
        None,
        None,
    ),
    "192.168.1.1": ("docker.io", "library/192.168.1.1", None, None),
    "192.168.1.1/repo": ("192.168.1.1", "repo", None, None),
    "192.168.1.1:5000/repo:5050": ("192.168.1.1:5000", "repo", "5050", None),
    "[::1]:5000/x": ("[::1]:5000", "x", None, None),
    "[2001:db8::1]/x:t": ("[2001:db8::1]", "x", "t", None),
    "[2001:db8::]:5000/repo": ("[2001:db8::]:5000", "repo", None, None),
    "[fc00:1:2:3:4:5:6:7]:5000/library/debian": (
        "[fc00:1:2:3:4:5:6:7]:5000",
        "library/debian",
        None,
        None,
    ),
    f"a.b/c@{SHA256}": ("a.b", "c", None, SHA256),
    f"test:5000/repo:tag@{SHA256}": ("test:5000", "repo", "tag", SHA256),
    f"busybox:latest@{SHA256}": ("docker.io", "library/busybox", "latest", SHA256),
    f"redis@{SHA256}": ("docker.io", "library/redis", None, SHA256),
    f"foo/bar@{SHA384}": ("docker.io", "foo/bar", None, SHA384),
    f"xn--7o8h.com/myimage:xn--7o8h.com@{SHA512}": (
        "xn--7o8h.com",
        "myimage",
        "xn--7o8h.com",
        SHA512,
    ),
    "a__b": ("docker.io", "library/a__b", None, None),
    "a_b": ("docker.io", "library/a_b", None, None),
    "a---b": ("docker.io", "library/a---b", None, None),
    "a.b": ("docker.io", "library/a.b", None, None),
    "docker---rules/docker": ("docker.io", "docker---rules/docker", None, None),
    "dock__er/docker": ("docker.io", "dock__er/docker", None, None),
    "d/docker": ("docker.io", "d/docker", None, None),
    "lowercase:Uppercase": ("docker.io", "library/lowercase", "Uppercase", None),
    "nginx:_x": ("docker.io", "library/nginx", "_x", None),
    "nginx:1.2-rc.3_beta": ("docker.io", "library/nginx", "1.2-rc.3_beta", None),
    # An upper-case first component reads as a registry, as in Docker.
    "Foo/bar": ("Foo", "bar", None, None),
    "FOO/bar": ("FOO", "bar", None, None),
    "Asdf.com/foo/bar": ("Asdf.com", "foo/bar", None, None),
    # A dotted first component that is no host name but a valid path component:
    # Docker keeps it as the path and leaves the domain empty.
    "foo_bar.com/app": ("", "foo_bar.com/app", None, None),
    "foo_bar.com:8080": ("docker.io", "library/foo_bar.com", "8080", None),
    # 64 characters that are not all hex, 63 hex digits, and 64 hex after a registry.
    "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev": (
        "docker.io",
        "library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
        None,
        None,
    ),
    HEX64[:-1]: ("docker.io", f"library/{HEX64[:-1]}", None, None),
    f"docker.io/{HEX64}": ("docker.io", f"library/{HEX64}", None, None),
    "nginx:" + "t" * 128: ("docker.io", "library/nginx", "t" * 128, None),
    "a" * 237: ("docker.io", "library/" + "a" * 237, None, None),  # name of exactly 255
    "example.com/" + "a" * 243: ("example.com", "a" * 243, None, None),
}


@pytest.mark.parametrize(("text", "fields"), VALID.items(), ids=lambda v: str(v)[:60])
def test_parse_valid(text: str, fields: tuple[str, str, str | None, str | None]) -> None:
    ref = parse_reference(text)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == fields


# input -> a word the message must contain
INVALID = {
    "": "empty",
    ":tag": "repository name is empty",
    ":justtag": "repository name is empty",
    f"@{SHA256}": "repository name is empty",
    "UPPER": "lowercase",
    "Uppercase:tag": "lowercase",
    "foo/Bar": "lowercase",
    "docker/Docker": "lowercase",
    "docker.io/docker/Docker": "lowercase",
    "test:5000/Uppercase/lowercase:tag": "lowercase",
    "Foo_bar/baz": "lowercase",
    "nginx:": "tag",
    "nginx:-tag": "tag",
    "nginx:.tag": "tag",
    "nginx:" + "t" * 129: "tag",
    "nginx:tëst": "tag",
    "nginx:tag!": "tag",
    "nginx:1:2": "tag",
    "a..b": "path component",
    "dock..er/docker": "registry",  # the dot makes Docker read it as one
    "dock_.er/docker": "registry",  # the dot makes Docker read it as one
    "dock-.er/docker": "registry",  # the dot makes Docker read it as one
    "a___b": "path component",
    "_a": "path component",
    "a_": "path component",
    "-docker": "path component",
    "docker-/docker": "path component",
    "-docker-/docker": "path component",
    "____/____": "path component",
    "_docker/_docker": "path component",
    "ngïnx": "path component",
    "ng\u0131nx": "path component",  # dotless i
    "ngÏnx": "lowercase",  # Docker's lower-case check is Unicode-aware
    "aa/asdf$$^/aa": "path component",
    "a b": "path component",
    "a/": "empty component",
    "/a": "empty component",
    "a//b": "empty component",
    "docker///docker": "empty component",
    "docker/": "empty component",
    "docker.io/docker///docker": "empty component",
    HEX64: "image id",
    SHA256: "digest without a repository name",
    SHA512: "digest without a repository name",
    "nginx\n": "whitespace",
    " nginx": "whitespace",
    "nginx\t": "whitespace",
    "a" * 238: "longer than 255",
    "example.com/" + "a" * 244: "longer than 255",
    "x" * 5000: "longer than any image reference",
    "nginx@sha256:" + "a" * 63: "64 hexadecimal digits",
    "nginx@sha256:" + "a" * 65: "64 hexadecimal digits",
    "repo@sha256:" + "f" * 34: "64 hexadecimal digits",
    "nginx@sha256:" + HEX64.upper(): "lowercase",
    "nginx@sha256:" + "g" * 64: "algorithm:hex",
    "nginx@sha256:" + HEX64[:-1] + "!": "algorithm:hex",
    "nginx@sha256": "algorithm:hex",
    "nginx@" + HEX64: "algorithm:hex",
    "nginx@sha512:" + HEX64: "128 hexadecimal digits",
    "nginx@md5:" + "a" * 32: "not supported",
    f"validname@invaliddigest:{HEX64}": "not supported",
    f"nginx@SHA256:{HEX64}": "not supported",
    f"nginx@{SHA256}@{SHA256}": "algorithm:hex",
    "https://github.com/docker/docker": "scheme",
    "[fc00::1]": "needs a repository path",
    "[fc00::1]:5000": "needs a repository path",
    "[2001:db8::1]:tag": "needs a repository path",
    "fc00::1:5000/debian": "registry",
    "[fe80::1%eth0]:5000/debian": "registry",
    "[fe80::1%@invalidzone]:5000/repo": "digest",
    "[2001:db8:3:4::192.0.2.33]:5000/debian": "registry",
    "-docker.io/docker/docker": "registry",
    "ab-.com/x": "registry",
    "test.com:http/bar": "registry",
    "bad_hostname.com:8080/myapp:tag": "registry",
}


@pytest.mark.parametrize(("text", "word"), INVALID.items(), ids=lambda v: repr(v)[:60])
def test_parse_invalid(text: str, word: str) -> None:
    with pytest.raises(InvalidReference) as caught:
        parse_reference(text)
    message = str(caught.value)
    assert word in message
    assert repr(text)[1:50] in message  # names the bad text
    assert message.endswith(".")


@pytest.mark.parametrize("value", [None, 42, b"nginx", ["nginx"]])
def test_non_string_input_raises_reference_error(value: object) -> None:
    with pytest.raises(InvalidReference, match="must be a string"):
        parse_reference(value)  # type: ignore[arg-type]


def test_reference_error_is_a_value_error_and_a_reconciler_error() -> None:
    with pytest.raises(ValueError):
        parse_reference("UPPER")
    with pytest.raises(ReconcilerError):
        parse_reference("UPPER")


SAME_IMAGE = [
    "nginx",
    "library/nginx",
    "docker.io/nginx",
    "docker.io/library/nginx",
    "index.docker.io/nginx",
    "index.docker.io/library/nginx",
]


def test_spellings_of_one_repository_are_equal_and_hash_alike() -> None:
    refs = [parse_reference(text) for text in SAME_IMAGE]
    assert all(ref == refs[0] for ref in refs)
    assert len(set(refs)) == 1


def test_tag_and_digest_take_part_in_equality() -> None:
    assert parse_reference("nginx") != parse_reference("nginx:latest")
    assert parse_reference("nginx:1") != parse_reference("nginx:2")
    assert parse_reference(f"nginx@{SHA256}") != parse_reference(f"nginx:1@{SHA256}")
    assert parse_reference("example.com/nginx") != parse_reference("nginx")


# input -> (name, familiar_name, canonical(), familiar())
FORMS = {
    "nginx": ("docker.io/library/nginx", "nginx", "docker.io/library/nginx:latest", "nginx:latest"),
    "nginx:1.23": (
        "docker.io/library/nginx",
        "nginx",
        "docker.io/library/nginx:1.23",
        "nginx:1.23",
    ),
    "foo/bar": ("docker.io/foo/bar", "foo/bar", "docker.io/foo/bar:latest", "foo/bar:latest"),
    f"foo/bar@{SHA256}": (
        "docker.io/foo/bar",
        "foo/bar",
        f"docker.io/foo/bar@{SHA256}",
        f"foo/bar@{SHA256}",
    ),
    f"busybox:latest@{SHA256}": (
        "docker.io/library/busybox",
        "busybox",
        f"docker.io/library/busybox@{SHA256}",
        f"busybox@{SHA256}",
    ),
    "docker.io/library/foo/bar": (
        "docker.io/library/foo/bar",
        "library/foo/bar",
        "docker.io/library/foo/bar:latest",
        "library/foo/bar:latest",
    ),
    "localhost:5000/a/b:1": (
        "localhost:5000/a/b",
        "localhost:5000/a/b",
        "localhost:5000/a/b:1",
        "localhost:5000/a/b:1",
    ),
    "example.com/library/x": (
        "example.com/library/x",
        "example.com/library/x",
        "example.com/library/x:latest",
        "example.com/library/x:latest",
    ),
    "[::1]:5000/x": ("[::1]:5000/x", "[::1]:5000/x", "[::1]:5000/x:latest", "[::1]:5000/x:latest"),
    "Foo/bar": ("Foo/bar", "Foo/bar", "Foo/bar:latest", "Foo/bar:latest"),
    "foo_bar.com/app": (
        "foo_bar.com/app",
        "foo_bar.com/app",
        "foo_bar.com/app:latest",
        "foo_bar.com/app:latest",
    ),
}


@pytest.mark.parametrize(("text", "forms"), FORMS.items(), ids=lambda v: str(v)[:60])
def test_forms(text: str, forms: tuple[str, str, str, str]) -> None:
    ref = parse_reference(text)
    assert (ref.name, ref.familiar_name, ref.canonical(), ref.familiar()) == forms
    assert str(ref) == ref.familiar()


def test_tag_and_digest_keep_both_fields_but_the_digest_decides() -> None:
    ref = parse_reference(f"busybox:1.36@{SHA256}")
    assert (ref.tag, ref.digest) == ("1.36", SHA256)
    assert ref.canonical() == f"docker.io/library/busybox@{SHA256}"
    assert parse_reference(ref.canonical()) == ref.with_digest(SHA256)


def test_with_tag_with_digest_and_repository() -> None:
    ref = parse_reference(f"example.com/app:1@{SHA256}")
    assert ref.with_tag("2") == parse_reference("example.com/app:2")
    assert ref.with_digest(SHA512) == parse_reference(f"example.com/app@{SHA512}")
    assert ref.repository() == parse_reference("example.com/app")
    assert ref.repository().tag is None and ref.repository().digest is None


@pytest.mark.parametrize("tag", ["", "-x", ".x", "a b", "t" * 129, "tëst", "x\n", "a/b", "a:b"])
def test_with_tag_refuses_invalid_tags(tag: str) -> None:
    with pytest.raises(InvalidReference, match="not a valid tag"):
        parse_reference("nginx").with_tag(tag)


@pytest.mark.parametrize(
    "digest",
    [
        "",
        "sha256",
        HEX64,
        f"sha256:{HEX64[:-1]}",
        f"sha256:{HEX64.upper()}",
        f"md5:{HEX64[:32]}",
        f"{SHA256}\n",
    ],
)
def test_with_digest_refuses_invalid_digests(digest: str) -> None:
    with pytest.raises(InvalidReference, match="not a valid digest"):
        parse_reference("nginx").with_digest(digest)


def test_constructor_accepts_normalised_fields() -> None:
    assert Reference("docker.io", "library/nginx", "1") == parse_reference("nginx:1")
    assert Reference("", "foo_bar.com/app") == parse_reference("foo_bar.com/app")


@pytest.mark.parametrize(
    ("domain", "path", "tag", "digest"),
    [
        ("docker.io", "nginx", None, None),  # missing library/
        ("index.docker.io", "library/nginx", None, None),  # legacy domain
        ("", "nginx", None, None),  # missing domain
        ("docker.io", "library/Nginx", None, None),
        ("docker.io", "library/nginx", "bad tag", None),
        ("docker.io", "library/nginx", "", None),
        ("docker.io", "library/nginx", None, f"sha256:{HEX64[:10]}"),
        ("docker.io", "library/nginx:1", None, None),  # tag smuggled into the path
        ("bad_host.com:80", "x", None, None),
        ("docker.io", 5, None, None),
    ],
)
def test_constructor_refuses_invalid_or_unnormalised_fields(
    domain: str, path: str, tag: str | None, digest: str | None
) -> None:
    with pytest.raises(InvalidReference):
        Reference(domain, path, tag, digest)


def test_references_sort_with_and_without_tags() -> None:
    texts = ["b", "a:2", "a", f"a@{SHA256}", "a:1", "example.com/a"]
    ordered = sorted(parse_reference(text) for text in texts)
    assert [ref.familiar() for ref in ordered] == [
        "a:latest",
        f"a@{SHA256}",
        "a:1",
        "a:2",
        "b:latest",
        "example.com/a:latest",
    ]
    assert parse_reference("a") < parse_reference("a:1") <= parse_reference("a:1")


@pytest.mark.parametrize(
    "text", ["nginx", "docker.io/library/nginx", "localhost:5000/a/b", "Foo/bar"]
)
def test_parse_repository_accepts_names(text: str) -> None:
    ref = parse_repository(text)
    assert ref == parse_reference(text)
    assert ref.tag is None and ref.digest is None


@pytest.mark.parametrize(
    ("text", "word"),
    [
        ("nginx:1.23", "has a tag"),
        (f"nginx@{SHA256}", "has a digest"),
        (f"nginx:1@{SHA256}", "has a digest"),
    ],
)
def test_parse_repository_refuses_tags_and_digests(text: str, word: str) -> None:
    with pytest.raises(InvalidReference, match=word):
        parse_repository(text)


@pytest.mark.parametrize("text", ["localhost:5000", "registry.example.com:443"])
def test_parse_repository_hints_at_a_registry_without_a_path(text: str) -> None:
    with pytest.raises(InvalidReference, match=f"{text}/name"):
        parse_repository(text)


def test_parse_repository_gives_no_registry_hint_for_a_plain_tag() -> None:
    with pytest.raises(InvalidReference) as caught:
        parse_repository("nginx:1")
    assert "registry" not in str(caught.value)


def test_parse_repository_passes_on_invalid_names() -> None:
    with pytest.raises(InvalidReference, match="lowercase"):
        parse_repository("foo/Bar")


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("latest", True),
        ("1.23", True),
        ("_", True),
        ("A-b.C_d", True),
        ("t" * 128, True),
        ("t" * 129, False),
        ("", False),
        ("-x", False),
        (".x", False),
        ("x y", False),
        ("tëst", False),
        ("latest\n", False),
        ("a+b", False),
    ],
)
def test_is_valid_tag(text: str, valid: bool) -> None:
    assert is_valid_tag(text) is valid


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        (SHA256, True),
        (SHA384, True),
        (SHA512, True),
        (f"sha256:{HEX64[:-1]}", False),
        (f"sha256:{HEX64}0", False),
        (f"sha256:{HEX64.upper()}", False),
        (f"sha256:{HEX64[:-1]}g", False),
        (f"SHA256:{HEX64}", False),
        (f"sha512:{HEX64}", False),
        (f"md5:{HEX64[:32]}", False),
        (f"sha256+b64:{HEX64}", False),
        (HEX64, False),
        (f"{SHA256}\n", False),
        ("", False),
    ],
)
def test_is_valid_digest(text: str, valid: bool) -> None:
    assert is_valid_digest(text) is valid


@pytest.mark.parametrize("value", [None, 1, b"latest"])
def test_validators_refuse_non_strings(value: object) -> None:
    assert is_valid_tag(value) is False  # type: ignore[arg-type]
    assert is_valid_digest(value) is False  # type: ignore[arg-type]


def test_familiar_form_is_ambiguous_where_dockers_is() -> None:
    ref = parse_reference("docker.io/a.b/c")
    assert (ref.domain, ref.path, ref.familiar_name) == ("docker.io", "a.b/c", "a.b/c")
    assert parse_reference(ref.familiar_name).domain == "a.b"


# Property tests. References are built from the grammar's pieces; every domain
# here contains '.' or ':' or is localhost, so Docker reads it as a registry.

ALNUM = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=4)
SEPARATOR = st.sampled_from([".", "_", "__", "-", "--", "---"])
COMPONENT = st.builds(
    lambda first, rest: first + "".join(sep + run for sep, run in rest),
    ALNUM,
    st.lists(st.tuples(SEPARATOR, ALNUM), max_size=2),
)
PATH = st.lists(COMPONENT, min_size=1, max_size=3).map("/".join)
LABEL = st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,4}[a-zA-Z0-9])?", fullmatch=True)
PORT = st.integers(1, 65535).map(lambda port: f":{port}")
DOMAIN = st.one_of(
    st.sampled_from(
        [
            "docker.io",
            "index.docker.io",
            "localhost",
            "localhost:5000",
            "[::1]:5000",
            "[2001:db8::1]",
        ]
    ),
    st.builds(
        lambda labels, port: ".".join(labels) + port,
        st.lists(LABEL, min_size=2, max_size=3),
        st.just("") | PORT,
    ),
    st.builds(lambda label, port: label + port, LABEL, PORT),
)
TAG = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True)
DIGEST = st.one_of(
    st.binary(min_size=32, max_size=32).map(lambda raw: f"sha256:{raw.hex()}"),
    st.binary(min_size=48, max_size=48).map(lambda raw: f"sha384:{raw.hex()}"),
    st.binary(min_size=64, max_size=64).map(lambda raw: f"sha512:{raw.hex()}"),
)


@st.composite
def references(draw: st.DrawFn) -> tuple[str, str, str, str | None, str | None]:
    """(text, expected domain, expected path, tag, digest)."""
    domain, path = draw(DOMAIN), draw(PATH)
    tag, digest = draw(st.none() | TAG), draw(st.none() | DIGEST)
    text = f"{domain}/{path}" + (f":{tag}" if tag else "") + (f"@{digest}" if digest else "")
    if domain in ("docker.io", "index.docker.io"):
        # Docker's familiar form drops docker.io, so a first component that
        # looks like a registry would read back as one (see the test above).
        first = path.partition("/")[0]
        assume("." not in first and first != "localhost")
    if domain == "index.docker.io":
        domain = "docker.io"
    if domain == "docker.io" and "/" not in path:
        path = f"library/{path}"
    return text, domain, path, tag, digest


def pinned(ref: Reference) -> Reference:
    """The reference canonical() spells: the digest alone if set, else the tag or latest."""
    return ref.with_digest(ref.digest) if ref.digest else ref.with_tag(ref.tag or "latest")


@given(references())
def test_generated_references_parse_to_their_fields(
    case: tuple[str, str, str, str | None, str | None],
) -> None:
    text, domain, path, tag, digest = case
    ref = parse_reference(text)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (domain, path, tag, digest)


@given(references())
def test_canonical_and_familiar_round_trip(
    case: tuple[str, str, str, str | None, str | None],
) -> None:
    ref = parse_reference(case[0])
    assert parse_reference(ref.canonical()) == pinned(ref)
    assert parse_reference(ref.familiar()) == pinned(ref)
    assert parse_reference(str(ref)).canonical() == ref.canonical()
    assert parse_reference(ref.name) == ref.repository()
    assert parse_reference(ref.familiar_name) == ref.repository()


NEAR_REFERENCE_TEXT = st.text(st.sampled_from("abAZ09._-/:@[]%é \n") | st.characters(), max_size=40)


@given(st.text(max_size=80) | NEAR_REFERENCE_TEXT)
def test_arbitrary_text_parses_or_raises_reference_error(text: str) -> None:
    try:
        ref = parse_reference(text)
    except InvalidReference:
        return
    assert parse_reference(ref.canonical()) == pinned(ref)


@given(st.text(max_size=140))
def test_is_valid_tag_matches_its_definition(text: str) -> None:
    word = set(string.ascii_letters + string.digits + "_")
    expected = 1 <= len(text) <= 128 and text[0] in word and set(text) <= word | {".", "-"}
    assert is_valid_tag(text) is expected


# A Docker Hub path whose first component reads as a registry: its familiar form names another repository.
@pytest.mark.parametrize("text", [*VALID, "docker.io/a.b/c:1", "docker.io/localhost/x:1"], ids=lambda v: str(v)[:60])
def test_the_familiar_key_is_the_key_of_the_familiar_form(text: str) -> None:
    ref = parse_reference(text)
    assert familiar_key(ref) == reference_key(ref.familiar())


# The pieces of the shapes a daemon lists, and of their near misses.
_FIRSTS = st.sampled_from([
    "registry.example", "localhost", "localhost:5000", "docker.io", "index.docker.io", "Foo", "foo_bar.com",
    "[::1]:5000", "reg-1.example:443", "sha256", "app", "a--b", "-bad.example", "x.",
])
_VALID_COMPONENTS = st.from_regex(r"[a-z0-9]{1,4}(?:(?:[._]|__|-+)[a-z0-9]{1,3}){0,2}", fullmatch=True)
_COMPONENTS = st.one_of(_VALID_COMPONENTS, _VALID_COMPONENTS, _VALID_COMPONENTS, st.from_regex(r"[A-Za-z0-9._-]{1,6}", fullmatch=True))
_TAGS = st.one_of(st.from_regex(r"\w[\w.-]{0,10}", fullmatch=True), st.sampled_from(["", ".x", "-x", "a" * 129, HEX64]))


@st.composite
def _daemon_like(draw: st.DrawFn) -> str:
    parts = draw(st.lists(_COMPONENTS, min_size=1, max_size=3))
    if draw(st.booleans()):
        parts.insert(0, draw(_FIRSTS))
    text = "/".join(parts)
    if draw(st.integers(0, 9)):
        text += ":" + draw(_TAGS)
    if not draw(st.integers(0, 9)):
        text += "@" + SHA256
    if not draw(st.integers(0, 19)):
        text = draw(st.sampled_from([" ", "\n", "/"])) + text
    return text


def _full_parse(text: str) -> tuple[str, str, str | None, str | None] | None:
    from reconciler.model.reference import _parse_fields

    try:
        return _parse_fields(text)
    except InvalidReference:
        return None


@settings(max_examples=500, deadline=None)
@given(st.one_of(_daemon_like(), _daemon_like(), st.text(alphabet="abcAB09.:/_-@ ", max_size=40)))
def test_the_tagged_name_shortcut_gives_the_full_parsers_fields_or_leaves_the_text_to_it(text: str) -> None:
    from reconciler.model.reference import _tagged_name_fields

    fast = _tagged_name_fields(text)
    if fast is not None:
        assert fast == _full_parse(text)


@pytest.mark.parametrize(
    "text",
    ["nginx:1.25", "reconciler-scale/app-001:n000001", "localhost:5000/team/app:v1", "registry.example/a/b/c:latest",
     "Foo/app:1", "[::1]:5000/app:t"],
)
def test_the_shapes_a_daemon_lists_take_the_shortcut(text: str) -> None:
    from reconciler.model.reference import _tagged_name_fields

    assert _tagged_name_fields(text) is not None
    assert _tagged_name_fields(text) == _full_parse(text)
