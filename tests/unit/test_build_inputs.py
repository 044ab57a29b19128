"""The digest of a build's inputs: every context file .dockerignore leaves in (path, mode,
content), the Dockerfile, args and target; and the words for what changed."""

from __future__ import annotations

import os
from pathlib import Path

from reconciler.loading.build_context import is_ignored, parse_dockerignore, read_build_inputs
from reconciler.model.build_inputs import what_changed
from reconciler.model.manifest import Builder, BuildRecipe


def _context(root: Path, files: dict[str, str], order: list[str] | None = None) -> Path:
    root.mkdir(parents=True)
    (root / "Dockerfile").write_text("FROM scratch\nCOPY . /\n")
    for name in order or list(files):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[name])
    return root


def _digest(context: Path, **recipe: object) -> str:
    return read_build_inputs(BuildRecipe(context=str(context), **recipe)).digest  # type: ignore[arg-type]


def test_the_digest_does_not_depend_on_the_order_files_were_made_in(tmp_path: Path) -> None:
    files = {"app/main.py": "print(1)\n", "app/util.py": "x = 2\n", "README": "hi\n"}
    first = _context(tmp_path / "a", files, ["README", "app/util.py", "app/main.py"])
    second = _context(tmp_path / "b", files, ["app/main.py", "README", "app/util.py"])
    assert _digest(first) == _digest(second)


def test_content_mode_args_target_and_dockerfile_each_change_the_digest(tmp_path: Path) -> None:
    context = _context(tmp_path / "c", {"run.sh": "echo hi\n"})
    before = _digest(context)
    os.chmod(context / "run.sh", 0o755)
    after_mode = _digest(context)
    assert after_mode != before
    (context / "run.sh").write_text("echo bye\n")
    after_content = _digest(context)
    assert after_content != after_mode
    assert _digest(context, args=(("V", "1"),)) != after_content
    assert _digest(context, target="runtime") != after_content
    assert _digest(context, builder=Builder.BUILDKIT) != after_content
    (context / "Dockerfile").write_text("FROM scratch\n")
    assert _digest(context) != after_content


def test_files_dockerignore_leaves_out_do_not_change_the_digest(tmp_path: Path) -> None:
    context = _context(
        tmp_path / "c",
        {"src/app.py": "1\n", "build/out.o": "x\n", "logs/a.log": "a\n", "logs/keep.log": "k\n", "notes.tmp": "n\n"},
    )
    (context / ".dockerignore").write_text("# scratch\nbuild\n**/*.tmp\nlogs/*.log\n!logs/keep.log\n")
    before = _digest(context)
    (context / "build" / "out.o").write_text("changed\n")
    (context / "notes.tmp").write_text("changed\n")
    (context / "logs" / "a.log").write_text("changed\n")
    assert _digest(context) == before
    (context / "logs" / "keep.log").write_text("changed\n")  # brought back by the exception
    assert _digest(context) != before


def test_dockerignore_patterns_follow_dockers_rules() -> None:
    patterns = parse_dockerignore(["node_modules", "*/temp*", "**/*.pyc", "!keep/*.pyc", "/docs/"])
    assert is_ignored("node_modules/x/y.js", patterns)
    assert is_ignored("a/temp1", patterns) and not is_ignored("a/b/temp1", patterns)
    assert is_ignored("a/b/c.pyc", patterns) and is_ignored("c.pyc", patterns)
    assert not is_ignored("keep/c.pyc", patterns)
    assert is_ignored("docs/index.md", patterns)
    assert not is_ignored("src/main.py", patterns)


def test_what_changed_names_the_file_the_arg_and_the_dockerfile(tmp_path: Path) -> None:
    context = _context(tmp_path / "c", {"app/main.py": "1\n", "app/other.py": "2\n"})
    before = read_build_inputs(BuildRecipe(context=str(context), args=(("V", "1"),)))
    (context / "app" / "main.py").write_text("changed\n")
    now = read_build_inputs(BuildRecipe(context=str(context), args=(("V", "1"),)))
    assert what_changed(before, now) == "context file app/main.py changed"
    changed_arg = read_build_inputs(BuildRecipe(context=str(context), args=(("V", "2"),)))
    assert what_changed(now, changed_arg) == "build arg V changed"
    (context / "Dockerfile").write_text("FROM scratch\n")
    assert what_changed(now, read_build_inputs(BuildRecipe(context=str(context), args=(("V", "1"),)))) == (
        "the Dockerfile changed"
    )
    assert what_changed(None, now) == "build inputs changed"
