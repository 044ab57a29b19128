"""Small reads of the sandbox daemon's state that several integration tests assert on."""

from __future__ import annotations

from docker import APIClient
from docker.errors import NotFound


def image_id(api: APIClient, ref: str) -> str | None:
    """The id of the image ``ref`` names on the daemon, or None when there is none."""
    try:
        return str(api.inspect_image(ref)["Id"])
    except NotFound:
        return None
