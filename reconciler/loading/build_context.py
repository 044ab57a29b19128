"""Read a build's inputs from disk: every context file ``.dockerignore`` leaves in (path, type,
mode, content), the Dockerfile, the args and the target, as a :class:`BuildInputs`.

``.dockerignore`` is read as Docker reads it: one pattern a line, ``#`` comments, ``!``
exceptions, the last matching line decides; ``*`` and ``?`` stay within a path segment,
``**`` spans any number of them; a pattern matching a directory matches what is in it.
The Dockerfile and ``.dockerignore`` themselves are always part of the inputs.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

from reconciler.errors import ReconcilerError
from reconciler.model.build_inputs import BuildInputs
from reconciler.model.manifest import BuildRecipe

_CHUNK = 1 << 20


class BuildContextError(ReconcilerError):
    """A build context could not be read."""


@dataclass(frozen=True)
class IgnorePattern:
    text: str
    exception: bool

    @cached_property
    def regex(self) -> re.Pattern[str]:
        return re.compile(_translate(self.text), re.ASCII | re.DOTALL)


def read_build_inputs(recipe: BuildRecipe) -> BuildInputs:
    """The inputs of ``recipe`` as they are on disk now (its context path absolute)."""
    patterns = read_dockerignore(recipe.context)
    always = {os.path.normpath(recipe.dockerfile), ".dockerignore"}
    try:
        files = {
            path: digest for path, digest in _walk(recipe.context, patterns) if path not in always
        }
        with open(os.path.join(recipe.context, recipe.dockerfile), "rb") as handle:
            dockerfile = hashlib.sha256(
                os.path.normpath(recipe.dockerfile).encode() + b"\0" + handle.read()
            ).hexdigest()
    except OSError as exc:
        raise BuildContextError(
            f"Cannot read the build context {recipe.context}: {exc.strerror or exc} ({exc.filename})."
            " Make it readable, or list what the build does not need in its .dockerignore."
        ) from exc
    if ".dockerignore" in os.listdir(recipe.context):
        files[".dockerignore"] = _file_digest(
            os.path.join(recipe.context, ".dockerignore"), 0o100644
        )
    return BuildInputs(
        files=files,
        dockerfile=dockerfile,
        args=recipe.args,
        target=recipe.target,
        builder=recipe.builder.value,
    )


def read_dockerignore(context: str) -> tuple[IgnorePattern, ...]:
    try:
        with open(
            os.path.join(context, ".dockerignore"), encoding="utf-8", errors="replace"
        ) as handle:
            lines = handle.read().splitlines()
    except FileNotFoundError:
        return ()
    except OSError as exc:
        raise BuildContextError(
            f"Cannot read {context}/.dockerignore: {exc.strerror or exc}."
        ) from exc
    return parse_dockerignore(lines)


def parse_dockerignore(lines: list[str]) -> tuple[IgnorePattern, ...]:
    patterns = []
    for line in lines:
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        exception = text.startswith("!")
        text = text[1:].strip() if exception else text
        text = os.path.normpath(text).lstrip("/")
        if text in ("", "."):
            continue
        patterns.append(IgnorePattern(text, exception))
    return tuple(patterns)


def is_ignored(path: str, patterns: tuple[IgnorePattern, ...]) -> bool:
    """Whether ``path`` (relative, ``/``-separated) stays out of the context: the last pattern
    matching it or one of its parent directories decides."""
    parents = path.split("/")
    candidates = ["/".join(parents[: i + 1]) for i in range(len(parents))]
    ignored = False
    for pattern in patterns:
        if any(pattern.regex.fullmatch(candidate) for candidate in candidates):
            ignored = not pattern.exception
    return ignored


def _walk(context: str, patterns: tuple[IgnorePattern, ...]) -> Iterator[tuple[str, str]]:
    """(relative path, digest) of every entry in the context, directories included, sorted."""
    exceptions = any(pattern.exception for pattern in patterns)
    for directory, subdirs, names in os.walk(context, onerror=_raise):
        subdirs.sort()
        relative_dir = os.path.relpath(directory, context)
        if patterns and not exceptions:
            # Without an exception (!) nothing under an excluded directory comes back: skip it whole.
            subdirs[:] = [d for d in subdirs if not is_ignored(d if relative_dir == "." else f"{relative_dir}/{d}", patterns)]
        for name in sorted([*subdirs, *names]):
            relative = name if relative_dir == "." else f"{relative_dir}/{name}"
            if patterns and is_ignored(relative, patterns):
                continue  # an excluded directory is still walked when an exception (!) may bring a file back
            full = os.path.join(directory, name)
            info = os.lstat(full)
            if stat.S_ISREG(info.st_mode):
                yield relative, _file_digest(full, info.st_mode)
            elif stat.S_ISLNK(info.st_mode):
                yield relative, f"link {stat.S_IMODE(info.st_mode):o} {os.readlink(full)}"
            elif stat.S_ISDIR(info.st_mode):
                yield relative, f"dir {stat.S_IMODE(info.st_mode):o}"


def _file_digest(path: str, mode: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return f"file {stat.S_IMODE(mode):o} {digest.hexdigest()}"


def _raise(error: OSError) -> None:
    raise error


def _translate(pattern: str) -> str:
    """A .dockerignore pattern as a regex over a whole relative path."""
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 2
            if pattern.startswith("/", i):  # "**/" : any number of leading segments, none included
                out.append("(?:.*/)?")
                i += 1
            else:
                out.append(".*")
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(char))
            else:
                body = pattern[i + 1 : end]
                if body.startswith("^") or body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)
