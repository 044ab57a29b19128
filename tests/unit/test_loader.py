"""Loading images.yaml: exact scalars, bounds, schema and semantic diagnostics."""

from __future__ import annotations

import hashlib
import json
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.errors import Diagnostic, ManifestError
from reconciler.loading.env_substitution import expand_variables
from reconciler.loading.loader import load_manifest, load_manifest_text
from reconciler.loading.yaml_source import MAX_BYTES, format_path, read_yaml
from reconciler.model.manifest import ImageSpec, ImageState, Manifest, PruneSpec, PullPolicy, Source
from reconciler.model.reference import Reference, parse_reference

DIGEST = "sha256:" + "0123456789abcdef" * 4


def load(text: str, environ: dict[str, str] | None = None) -> Manifest:
    return load_manifest_text(textwrap.dedent(text), "images.yaml", environ or {})


def problems(text: str, environ: dict[str, str] | None = None) -> list[str]:
    """The diagnostics of a manifest that must fail, as ``FILE:LINE:COL: path: message``."""
    with pytest.raises(ManifestError) as caught:
        load(text, environ)
    return [str(d) for d in caught.value.diagnostics]


def problems_of_file(path: Path) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load_manifest(path, {})
    return [str(d) for d in caught.value.diagnostics]


def ref(text: str) -> Reference:
    return parse_reference(text)


# --- a valid manifest -------------------------------------------------------------

FULL = f"""\
version: 1
images:
  - name: ${{REGISTRY:-docker.io}}/library/nginx
    tags: ["latest", "1.23.1"]
    aliases: ["nginx:my_blog_stable", "blog"]
  - name: localhost:5000/team/app
    tags: ["1.4.2"]
    digest: "{DIGEST}"
    platform: linux/amd64
    pull: always
  - name: localhost:5000/old/tool
    state: absent
  - name: busybox
  - name: localhost:5000/team/pinned
    digest: "{DIGEST}"
    pull: never
prune:
  unlisted_tags: true
  dangling: false
"""


def test_full_manifest_builds_the_expected_manifest() -> None:
    manifest = load_manifest_text(FULL, "images.yaml", {})
    assert manifest == Manifest(
        images=(
            ImageSpec(
                repository=ref("nginx"),
                tags=("latest", "1.23.1"),
                aliases=(ref("nginx:my_blog_stable"), ref("docker.io/library/blog:latest")),
            ),
            ImageSpec(
                repository=ref("localhost:5000/team/app"),
                tags=("1.4.2",),
                digest=DIGEST,
                platform="linux/amd64",
                pull=PullPolicy.ALWAYS,
            ),
            ImageSpec(repository=ref("localhost:5000/old/tool"), state=ImageState.ABSENT),
            ImageSpec(repository=ref("docker.io/library/busybox"), tags=("latest",)),
            ImageSpec(
                repository=ref("localhost:5000/team/pinned"), digest=DIGEST, pull=PullPolicy.NEVER
            ),
        ),
        prune=PruneSpec(unlisted_tags=True, dangling=False),
        path="images.yaml",
        digest="sha256:" + hashlib.sha256(FULL.encode()).hexdigest(),
    )
    assert [spec.source for spec in manifest.images] == [
        Source("images.yaml", "images[0]", 3, 5),
        Source("images.yaml", "images[1]", 6, 5),
        Source("images.yaml", "images[2]", 11, 5),
        Source("images.yaml", "images[3]", 13, 5),
        Source("images.yaml", "images[4]", 14, 5),
    ]


def test_environment_value_replaces_the_default() -> None:
    manifest = load_manifest_text(FULL, "images.yaml", {"REGISTRY": "localhost:5000"})
    assert manifest.images[0].repository == ref("localhost:5000/library/nginx")


def test_load_manifest_reads_a_file_and_digests_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "images.yaml"
    path.write_bytes(FULL.encode())
    manifest = load_manifest(path, {})
    assert manifest.path == str(path)
    assert manifest.digest == "sha256:" + hashlib.sha256(FULL.encode()).hexdigest()
    assert manifest.images[0].source == Source(str(path), "images[0]", 3, 5)


def test_version_alone_is_an_empty_manifest() -> None:
    assert load("version: 1\n").images == ()
    assert load("version: 1\n").prune == PruneSpec()


def test_missing_file_is_a_manifest_error(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    assert problems_of_file(path) == [f"{path}: cannot read the file: No such file or directory."]


# --- exact scalars -------------------------------------------------------------------


def test_plain_tags_stay_exactly_as_written() -> None:
    manifest = load("""\
        version: 1
        images:
          - name: app
            tags: [1.10, on, no, 010, 2024-01-01, yes, 0x1F, 1e3]
    """)
    assert manifest.images[0].tags == (
        "1.10", "on", "no", "010", "2024-01-01", "yes", "0x1F", "1e3",
    )  # fmt: skip


def test_plain_scalars_yaml_1_1_would_retype_stay_strings() -> None:
    data = read_yaml("tags: [1.10, on, no, 010, 2024-01-01, 12:30, .inf, 0x1F]\n", "f.yaml").data
    assert data == {"tags": ["1.10", "on", "no", "010", "2024-01-01", "12:30", ".inf", "0x1F"]}


def test_a_time_like_tag_is_reported_as_written_not_as_sexagesimal() -> None:
    assert problems("""\
        version: 1
        images:
          - name: app
            tags: [12:30]
    """) == [
        "images.yaml:4:12: images[0].tags[0]: '12:30' is not a valid tag: a tag has 1 to 128"
        " ASCII letters, digits, '_', '.' or '-', and does not start with '.' or '-'."
    ]


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("true", True),
        ("True", True),
        ("TRUE", True),
        ("false", False),
        ("FALSE", False),
        ("null", None),
        ("Null", None),
        ("NULL", None),
        ("~", None),
        ("", None),
        ("0", 0),
        ("42", 42),
        ("-7", -7),
        ("+7", 7),
        ("010", "010"),
        ("1.10", "1.10"),
        ("1_000", "1_000"),
        ("0o17", "0o17"),
        ("tRue", "tRue"),
        ("'1'", "1"),
        ('"true"', "true"),
        ("!!str 1", "1"),
        ("|\n  1.10", "1.10\n"),
    ],
)
def test_scalar_typing_follows_the_restricted_core_schema(written: str, value: object) -> None:
    data = read_yaml(f"key: {written}\n", "f.yaml").data
    assert data["key"] == value
    assert type(data["key"]) is type(value)


@given(
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp"), max_codepoint=0xFFFD)
    )
)
def test_any_double_quoted_text_reads_back_unchanged(text: str) -> None:
    assert read_yaml(f"key: {json.dumps(text)}\n", "f.yaml").data == {"key": text}


def test_number_where_a_string_is_wanted_asks_to_quote_it() -> None:
    assert problems("""\
        version: 1
        images:
          - name: app
            tags: [1]
    """) == [
        'images.yaml:4:12: images[0].tags[0]: expected a string, got the number 1; quote it: "1".'
    ]


def test_quote_hint_shows_the_text_as_written() -> None:
    assert problems("""\
        version: 1
        images:
          - name: True
            tags: [+5]
    """) == [
        'images.yaml:3:11: images[0].name: expected a string, got the boolean True; quote it: "True".',
        'images.yaml:4:12: images[0].tags[0]: expected a string, got the number +5; quote it: "+5".',
    ]


def test_explicit_yaml_tags_other_than_str_are_refused() -> None:
    assert problems("""\
        version: 1
        images:
          - name: app
            tags: [!!int "3"]
    """) == ["images.yaml:4:12: images[0].tags[0]: the YAML tag !!int is not supported; remove it."]


# --- YAML structure --------------------------------------------------------------------


def test_duplicate_keys_are_reported_at_the_second_key() -> None:
    assert problems("""\
        version: 1
        images:
          - name: app
            tags: ["1"]
            tags: ["2"]
    """) == [
        "images.yaml:5:5: images[0].tags: duplicate key 'tags' (first at line 4);"
        " YAML would silently keep the last one."
    ]


def test_non_scalar_key_is_reported() -> None:
    assert problems("""\
        version: 1
        ? [a, b]
        : c
    """) == ["images.yaml:2:3: a key must be a single word, not a list or mapping."]


def test_merge_key_is_just_an_unknown_key() -> None:
    assert problems("""\
        version: 1
        base: &base {name: app}
        images:
          - <<: *base
    """) == [
        "images.yaml:2:1: base: unknown key 'base'; allowed keys: version, images, prune, retention, build_cache.",
        "images.yaml:4:5: images[0]: missing required key 'name'.",
        "images.yaml:4:5: images[0].<<: unknown key '<<'; allowed keys:"
        " name, tags, aliases, digest, platform, pull, source, context, dockerfile, args, target, builder, archive, state.",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "images.yaml:1:1: the file is empty; start it with `version: 1`."),
        ("# only a comment\n\n", "images.yaml:1:1: the file is empty; start it with `version: 1`."),
        ("---\n", "images.yaml:1:1: the file is empty; start it with `version: 1`."),
        (
            "version: 1\n---\nversion: 1\n",
            "images.yaml:2:1: the file holds several YAML documents; a manifest is a single document.",
        ),
        (
            "- version: 1\n",
            "images.yaml:1:1: the top level must be a mapping of keys such as `version: 1`, not a list.",
        ),
        (
            "version\n",
            "images.yaml:1:1: the top level must be a mapping of keys such as `version: 1`,"
            " not a single value.",
        ),
        (
            "version: 1\nimages:\n  - name: app\n   tags: [a]\n",
            "images.yaml:4:4: invalid YAML: a key at column 4 lines up with nothing in the block that starts"
            " at line 3; indent it exactly as the lines it belongs with, using spaces (the keys of one list"
            " entry share the column after `- `).",
        ),
        (
            "version: 1\nimages: [app\n",
            "images.yaml:3:1: invalid YAML: the list `[...]` opened at line 2 is not closed, or its items are"
            " not separated by commas; close it with `]` and separate items with `, `.",
        ),
        (
            "version: 1\nimages: *nothing\n",
            "images.yaml:2:9: invalid YAML: the alias `*nothing` names no anchor `&nothing` defined above it.",
        ),
        (
            "version: 1\nimages:\n\t- name: app\n",
            "images.yaml:3:1: invalid YAML: a tab character: YAML indents with spaces only; replace the tab with spaces.",
        ),
        (
            "version: 1\nimages:\n  - name: app\n    tags: [x]\n  ? bad\n",
            "images.yaml:5:3: invalid YAML: a key at column 3 lines up with nothing in the block that starts"
            " at line 3; indent it exactly as the lines it belongs with, using spaces (the keys of one list"
            " entry share the column after `- `).",
        ),
        (
            "version: 1\nimages:\n  - name: a: b\n",
            "images.yaml:3:12: invalid YAML: a `:` where no key can start: a value holding `: ` must be quoted,"
            " or this line is indented deeper than the keys beside it; quote the value (\"...\" or '...') or"
            " align the key with its neighbours.",
        ),
        (
            'version: 1\nimages:\n  - name: app\n    tags: ["x\n',
            "images.yaml:5:1: invalid YAML: the quoted value opened at line 4 is never closed; add the closing quote.",
        ),
        (
            "version: 1\nname: a\x07b\n",
            "images.yaml:2:8: invalid YAML: the character U+0007 is not allowed in a YAML file.",
        ),
        (
            "a: &a [*a]\n",
            "images.yaml:1:4: an alias refers to a node that contains it; YAML recursion is not allowed.",
        ),
    ],
)
def test_unusable_documents_are_refused_with_one_diagnostic(text: str, expected: str) -> None:
    assert problems(text) == [expected]


def test_non_utf8_file_is_refused_at_the_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "images.yaml"
    path.write_bytes(b"version: 1\nimages:\n  - name: caf\xe9\n")
    assert problems_of_file(path) == [
        f"{path}:3:14: the file is not UTF-8: byte 0xe9 cannot be decoded; save it as UTF-8."
    ]


def test_file_over_one_mebibyte_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "images.yaml"
    path.write_bytes(b"version: 1\n" + b"# padding\n" * (MAX_BYTES // 10))
    started = time.perf_counter()
    assert problems_of_file(path) == [
        f"{path}: the file is larger than 1 MiB (1048576 bytes), the most a manifest may be."
    ]
    assert (
        time.perf_counter() - started < 15
    )  # refused, not expanded: far below what expanding costs, even on a busy machine


def test_text_over_one_mebibyte_is_refused() -> None:
    assert problems("version: 1\n" + "#" * MAX_BYTES) == [
        "images.yaml: the file is larger than 1 MiB (1048576 bytes), the most a manifest may be."
    ]


BILLION_LAUGHS = "".join(
    [
        'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n',
        *(
            f"{name}: &{name} [{','.join([f'*{previous}'] * 9)}]\n"
            for previous, name in zip("abcdefgh", "bcdefghi", strict=True)
        ),
    ]
)


def test_billion_laughs_is_refused_fast() -> None:
    assert len(BILLION_LAUGHS) < 400
    started = time.perf_counter()
    found = problems(BILLION_LAUGHS)
    assert (
        time.perf_counter() - started < 15
    )  # refused, not expanded: far below what expanding costs, even on a busy machine
    assert found == [
        "images.yaml:6:4: the document expands to more than 100000 nodes through YAML aliases."
    ]


def test_more_than_the_node_bound_without_aliases_is_refused() -> None:
    found = problems("version: 1\nimages: [" + ",".join(["a"] * 100_001) + "]\n")
    assert found == [
        "images.yaml:2:200000: the document has more than 100000 nodes;"
        " split it into smaller manifests."
    ]


@pytest.mark.parametrize("depth", [60, 5000])
def test_deep_nesting_is_refused(depth: int) -> None:
    started = time.perf_counter()
    found = problems("version: 1\nimages: " + "[" * depth + "]" * depth + "\n")
    assert (
        time.perf_counter() - started < 15
    )  # refused, not expanded: far below what expanding costs, even on a busy machine
    # The root mapping is level 1, so the 50th '[' (column 58) opens level 51.
    assert found == [
        "images.yaml:2:58: the document nests deeper than 50 levels; a manifest needs only a few."
    ]


def test_nesting_deep_only_through_aliases_is_refused() -> None:
    text = "deep: &d " + "[" * 30 + "]" * 30 + "\nimages: " + "[" * 30 + "*d" + "]" * 30 + "\n"
    assert problems(text) == [
        "images.yaml:1:7: the document nests deeper than 50 levels; a manifest needs only a few."
    ]


# --- schema diagnostics -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            "- name: app\n    tagz: [a]",
            "images.yaml:4:5: images[0].tagz: unknown key 'tagz'; did you mean 'tags'?"
            " Allowed keys: name, tags, aliases, digest, platform, pull, source, context, dockerfile, args, target, builder, archive, state.",
        ),
        (
            "- name: app\n    tags: latest",
            "images.yaml:4:11: images[0].tags: expected a list, got 'latest';"
            ' write it as a list: ["latest"].',
        ),
        (
            "- name: app\n    pull: sometimes",
            "images.yaml:4:11: images[0].pull: must be one of: if-missing, always, never"
            " (got 'sometimes').",
        ),
        (
            "- name: app\n    state: gone",
            "images.yaml:4:12: images[0].state: must be one of: present, absent (got 'gone').",
        ),
        ("- tags: [a]", "images.yaml:3:5: images[0]: missing required key 'name'."),
        (
            "- name: app\n    tags: [a, b, a]",
            "images.yaml:4:18: images[0].tags[2]: 'a' is listed twice"
            " (first as images[0].tags[0], line 4); list it once.",
        ),
        ("- name: ''", "images.yaml:3:11: images[0].name: must not be empty."),
        ("- name:", "images.yaml:3:10: images[0].name: expected a string, got an empty value."),
        (
            "- name: app\n    platform: Linux/AMD64",
            "images.yaml:4:15: images[0].platform: 'Linux/AMD64' is not a platform; write os/arch"
            " or os/arch/variant in lower case, such as linux/amd64 or linux/arm64/v8.",
        ),
        (
            "- nginx",
            "images.yaml:3:5: images[0]: expected a mapping, got 'nginx'; write it as `- name: nginx`.",
        ),
    ],
)
def test_schema_errors_become_sentences_at_their_place(entry: str, expected: str) -> None:
    assert problems(f"version: 1\nimages:\n  {entry}\n") == [expected]


@pytest.mark.parametrize(
    ("prune", "expected"),
    [
        ("dangling: yes", "images.yaml:3:13: prune.dangling: expected true or false, got 'yes'."),
        (
            "dangling: 1",
            "images.yaml:3:13: prune.dangling: expected true or false, got the number 1.",
        ),
        (
            "unlisted: true",
            "images.yaml:3:3: prune.unlisted: unknown key 'unlisted'; did you mean 'unlisted_tags'?"
            " Allowed keys: unlisted_tags, dangling.",
        ),
    ],
)
def test_prune_errors(prune: str, expected: str) -> None:
    assert problems(f"version: 1\nprune:\n  {prune}\n") == [expected]


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("2", "images.yaml:1:10: version: unsupported version 2; this reconcile reads version 1."),
        (
            "'1'",
            "images.yaml:1:10: version: the version is the number 1, not the text '1';"
            " remove the quotes.",
        ),
        (
            "v1",
            "images.yaml:1:10: version: unsupported version 'v1'; this reconcile reads version 1.",
        ),
    ],
)
def test_wrong_version(version: str, expected: str) -> None:
    assert problems(f"version: {version}\nimages: []\n") == [expected]


def test_missing_version_still_reports_the_other_errors() -> None:
    assert problems("""\
        images:
          - name: app
            pull: sometimes
    """) == [
        "images.yaml:1:1: missing required key 'version'; start the file with `version: 1`.",
        "images.yaml:3:11: images[0].pull: must be one of: if-missing, always, never (got 'sometimes').",
    ]


# --- semantic diagnostics -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (
            "- name: nginx:1.2",
            """images.yaml:3:11: images[0].name: a name takes no tag; move '1.2' to tags: ["1.2"].""",
        ),
        (
            f"- name: nginx@{DIGEST}",
            f'images.yaml:3:11: images[0].name: a name takes no digest; move it to digest: "{DIGEST}".',
        ),
        (
            "- name: Nginx/App",
            "images.yaml:3:11: images[0].name: 'Nginx/App' is not a valid image reference:"
            " the repository path 'App' must be lowercase.",
        ),
        (
            "- name: app\n    tags: [v 1]",
            "images.yaml:4:12: images[0].tags[0]: 'v 1' is not a valid tag: a tag has 1 to 128"
            " ASCII letters, digits, '_', '.' or '-', and does not start with '.' or '-'.",
        ),
        (
            "- name: app\n    aliases: ['app:']",
            "images.yaml:4:15: images[0].aliases[0]: 'app:' is not a valid image reference:"
            " the tag after ':' is empty.",
        ),
        (
            f"- name: app\n    aliases: ['app@{DIGEST}']",
            f"images.yaml:4:15: images[0].aliases[0]: alias 'app@{DIGEST}' has a digest;"
            " an alias is a name with a tag, as `docker tag` makes.",
        ),
        (
            "- name: app\n    digest: sha256:ABC",
            "images.yaml:4:13: images[0].digest: 'sha256:ABC' is not a valid digest;"
            " write sha256: followed by 64 lower-case hexadecimal digits.",
        ),
        (
            "- name: app\n    state: absent\n    pull: always",
            "images.yaml:5:5: images[0].pull: 'pull' has no meaning with state: absent,"
            " which removes every local tag of the repository; remove it.",
        ),
    ],
)
def test_semantic_errors_at_their_place(entry: str, expected: str) -> None:
    assert problems(f"version: 1\nimages:\n  {entry}\n") == [expected]


def test_absent_entry_reports_only_the_keys_it_must_not_have() -> None:
    # The tag is not checked as well: the whole key has to go.
    assert problems("""\
        version: 1
        images:
          - name: old/tool
            state: absent
            tags: ["not a tag"]
    """) == [
        "images.yaml:5:5: images[0].tags: 'tags' has no meaning with state: absent,"
        " which removes every local tag of the repository; remove it."
    ]


def test_alias_without_tag_gets_latest() -> None:
    manifest = load("""\
        version: 1
        images:
          - name: app
            aliases: [mirror/app, "nginx:stable"]
    """)
    assert manifest.images[0].aliases == (
        ref("docker.io/mirror/app:latest"),
        ref("docker.io/library/nginx:stable"),
    )


def test_same_repository_after_normalisation_is_reported_at_the_second() -> None:
    assert problems("""\
        version: 1
        images:
          - name: nginx
          - name: docker.io/library/nginx
            tags: ["1"]
    """) == [
        "images.yaml:4:11: images[1].name: repository nginx is already declared by images[0]"
        " (line 3); merge the two entries."
    ]


def test_repository_both_present_and_absent() -> None:
    assert problems("""\
        version: 1
        images:
          - name: index.docker.io/library/redis
            state: absent
          - name: redis
    """) == [
        "images.yaml:5:11: images[1].name: repository redis is declared present here and absent"
        " by images[0] (line 3); keep one of them."
    ]


def test_alias_claimed_twice_or_equal_to_a_tag_or_absent() -> None:
    assert problems("""\
        version: 1
        images:
          - name: app
            aliases: ["nginx:stable", "docker.io/tool:1"]
          - name: other
            aliases: ["docker.io/library/nginx:stable", "app:latest", "old:1"]
          - name: tool
            tags: ["1"]
          - name: old
            state: absent
    """) == [
        "images.yaml:4:31: images[0].aliases[1]: alias tool:1 is already declared as a tag"
        " by images[2] (line 8); it cannot be both.",
        "images.yaml:6:15: images[1].aliases[0]: alias nginx:stable is already claimed by"
        " images[0] (line 4).",
        "images.yaml:6:49: images[1].aliases[1]: alias app:latest is already declared as a tag"
        " by images[0] (line 3); it cannot be both.",
        "images.yaml:6:63: images[1].aliases[2]: alias old:1 is in repository old, which"
        " images[3] (line 9) declares absent.",
    ]


def test_semantic_checks_skip_entries_the_schema_refused() -> None:
    # The bad name and tag of images[0] are not reported on top of its unknown key.
    assert problems("""\
        version: 1
        images:
          - name: Bad:1.0
            tags: ["-x"]
            tagz: []
    """) == [
        "images.yaml:5:5: images[0].tagz: unknown key 'tagz'; did you mean 'tags'?"
        " Allowed keys: name, tags, aliases, digest, platform, pull, source, context, dockerfile, args, target, builder, archive, state."
    ]


def test_every_problem_is_reported_at_once_in_line_order() -> None:
    found = problems("""\
        version: 3
        images:
          - name: app
            tags: [1, "ok", "ok"]
            pull: sometimes
          - name: nginx:1.2
          - name: app
            tagz: []
        prune:
          dangling: no
          extra: true
    """)
    assert found == [
        "images.yaml:1:10: version: unsupported version 3; this reconcile reads version 1.",
        'images.yaml:4:12: images[0].tags[0]: expected a string, got the number 1; quote it: "1".',
        "images.yaml:4:21: images[0].tags[2]: 'ok' is listed twice (first as images[0].tags[1],"
        " line 4); list it once.",
        "images.yaml:5:11: images[0].pull: must be one of: if-missing, always, never (got 'sometimes').",
        """images.yaml:6:11: images[1].name: a name takes no tag; move '1.2' to tags: ["1.2"].""",
        "images.yaml:8:5: images[2].tagz: unknown key 'tagz'; did you mean 'tags'?"
        " Allowed keys: name, tags, aliases, digest, platform, pull, source, context, dockerfile, args, target, builder, archive, state.",
        "images.yaml:10:13: prune.dangling: expected true or false, got 'no'.",
        "images.yaml:11:3: prune.extra: unknown key 'extra'; allowed keys: unlisted_tags, dangling.",
    ]


def test_error_message_lists_every_problem_then_the_count() -> None:
    with pytest.raises(ManifestError) as caught:
        load("version: 2\nimages: {}\n")
    assert str(caught.value) == (
        "images.yaml:1:10: version: unsupported version 2; this reconcile reads version 1.\n"
        "images.yaml:2:9: images: expected a list, got a mapping.\n"
        "2 problems found; nothing was changed."
    )
    assert caught.value.diagnostics[1] == Diagnostic(
        "images.yaml", "images", 2, 9, "expected a list, got a mapping."
    )


# --- environment substitution -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "environ", "expected"),
    [
        ("${REGISTRY}/app", {"REGISTRY": "localhost:5000"}, "localhost:5000/app"),
        ("${REGISTRY:-docker.io}/app", {"REGISTRY": "localhost:5000"}, "localhost:5000/app"),
        ("${REGISTRY:-docker.io}/app", {}, "docker.io/app"),
        ("${REGISTRY:-docker.io}/app", {"REGISTRY": ""}, "docker.io/app"),
        ("${EMPTY}x", {"EMPTY": ""}, "x"),
        ("${A:-}x", {}, "x"),
        ("$${HOME} costs $5 and $$", {}, "${HOME} costs $5 and $"),
        ("${A}${B:-b}", {"A": "a"}, "ab"),
        ("no variables", {}, "no variables"),
    ],
)
def test_expand_variables(text: str, environ: dict[str, str], expected: str) -> None:
    assert expand_variables(text, environ) == (expected, [])


def test_substituted_values_are_validated_and_built() -> None:
    manifest = load(
        """\
        version: 1
        images:
          - name: ${REGISTRY}/team/app
            tags: ["${TAG:-latest}", "${TAG:-v}${MINOR}"]
        """,
        {"REGISTRY": "localhost:5000", "MINOR": "1.2"},
    )
    assert manifest.images[0].repository == ref("localhost:5000/team/app")
    assert manifest.images[0].tags == ("latest", "v1.2")


def test_double_dollar_reaches_validation_as_one_dollar() -> None:
    assert problems("""\
        version: 1
        images:
          - name: app
            tags: ["a$$b"]
    """) == [
        "images.yaml:4:12: images[0].tags[0]: 'a$b' is not a valid tag: a tag has 1 to 128"
        " ASCII letters, digits, '_', '.' or '-', and does not start with '.' or '-'."
    ]


def test_unset_and_malformed_variables_are_reported_at_their_value() -> None:
    assert problems("""\
        version: 1
        images:
          - name: ${REGISTRY}/app
            tags: ["${TAG", "${1X}"]
    """) == [
        "images.yaml:3:11: images[0].name: environment variable REGISTRY is not set;"
        " export it or write ${REGISTRY:-default}.",
        "images.yaml:4:12: images[0].tags[0]: malformed variable reference '${TAG';"
        " write ${NAME} or ${NAME:-default}, or $$ for a literal $.",
        "images.yaml:4:21: images[0].tags[1]: malformed variable reference '${1X}';"
        " write ${NAME} or ${NAME:-default}, or $$ for a literal $.",
    ]


def test_keys_are_not_substituted() -> None:
    assert problems("version: 1\n${KEY}: x\n", {"KEY": "images"}) == [
        "images.yaml:2:1: ${KEY}: unknown key '${KEY}'; allowed keys: version, images, prune, retention, build_cache."
    ]


# --- paths, positions and scale ---------------------------------------------------------------


def test_format_path() -> None:
    assert format_path(()) == ""
    assert format_path(("prune", "dangling")) == "prune.dangling"
    assert format_path(("images", 2, "tags", 0)) == "images[2].tags[0]"


def test_position_falls_back_to_the_nearest_written_ancestor() -> None:
    document = read_yaml("version: 1\nimages:\n  - name: app\n", "f.yaml")
    assert document.position(("images", 0, "name")) == (3, 11)
    assert document.position(("images", 0, "name"), at_key=True) == (3, 5)
    assert document.position(("images", 0, "tags", 3)) == (3, 5)
    assert document.position(("nothing",)) == (1, 1)


def test_a_thousand_images_load_quickly() -> None:
    lines = ["version: 1", "images:"]
    for index in range(1000):
        lines += [
            f"  - name: ${{REGISTRY}}/team/app{index}",
            f'    tags: ["1.{index}", "latest"]',
            f'    aliases: ["mirror/app{index}:stable"]',
            "    pull: always",
        ]
    started = time.perf_counter()
    manifest = load_manifest_text("\n".join(lines), "big.yaml", {"REGISTRY": "localhost:5000"})
    assert time.perf_counter() - started < 5
    assert len(manifest.images) == 1000
    assert manifest.images[999].repository == ref("localhost:5000/team/app999")
    assert manifest.images[999].aliases == (ref("docker.io/mirror/app999:stable"),)
