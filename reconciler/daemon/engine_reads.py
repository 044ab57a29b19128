"""The Engine API reads a plan makes, and an image delete, in docker-py's shape, over either transport.

:class:`HttpReads` speaks them with :mod:`reconciler.daemon.engine_http` (no docker-py to
import); :class:`ClientReads` lends them to a docker-py ``APIClient`` (ssh://, which docker-py
reaches through the ssh client) or to a test's stand-in for one. :class:`DockerEngine` asks
either through the same methods and maps both kinds of failure to the project's errors.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from reconciler.daemon.engine_http import EngineHttp


class EngineReads(Protocol):
    """What :class:`~reconciler.daemon.docker_engine.DockerEngine` reads; ``timeout`` bounds each call."""

    timeout: float

    def version(self) -> Any: ...

    def info(self) -> Any: ...

    def images(self, all: bool = False) -> Any: ...

    def containers(self, all: bool = False) -> Any: ...

    def inspect_image(self, image: str) -> Any: ...

    def inspect_container(self, container: str) -> Any: ...

    def history(self, image: str) -> Any: ...

    def df(self) -> Any: ...

    def remove_image(self, image: str) -> Any:
        """``DELETE /images/{image}``, never forced: the one write made here, a removal's every step."""
        ...

    def get_json(self, path: str, headers: Mapping[str, str] | None = None, *, versioned: bool = True) -> Any:
        """``GET path`` (under ``/v<api>`` unless ``versioned`` is False), decoded."""
        ...

    def get_json_lines(self, path: str, params: Mapping[str, str]) -> Iterator[Any]:
        """A streamed answer of one JSON document per line, read to its end."""
        ...

    def close(self) -> None: ...


class HttpReads:
    """The reads over the standard library's HTTP client, at API version ``api_version``."""

    def __init__(self, http: EngineHttp, api_version: str, timeout: float) -> None:
        self.http = http
        self.api_version = api_version
        self.timeout = timeout

    def _get(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return self.http.get_json(f"/v{self.api_version}{path}", self.timeout, params)

    def version(self) -> Any:
        return self._get("/version")

    def info(self) -> Any:
        return self._get("/info")

    def images(self, all: bool = False) -> Any:
        return self._get("/images/json", {"all": "1" if all else "0"})

    def containers(self, all: bool = False) -> Any:
        return self._get("/containers/json", {"all": "1" if all else "0"})

    def inspect_image(self, image: str) -> Any:
        return self._get(f"/images/{image}/json")

    def inspect_container(self, container: str) -> Any:
        return self._get(f"/containers/{container}/json")

    def history(self, image: str) -> Any:
        return self._get(f"/images/{image}/history")

    def df(self) -> Any:
        return self._get("/system/df")

    def remove_image(self, image: str) -> Any:
        params = {"force": "false", "noprune": "false"}
        return self.http.delete_json(f"/v{self.api_version}/images/{image}", self.timeout, params)

    def get_json(self, path: str, headers: Mapping[str, str] | None = None, *, versioned: bool = True) -> Any:
        full = f"/v{self.api_version}{path}" if versioned else path
        return self.http.get_json(full, self.timeout, headers=headers)

    def get_json_lines(self, path: str, params: Mapping[str, str]) -> Iterator[Any]:
        return self.http.get_json_lines(f"/v{self.api_version}{path}", self.timeout, params)

    def close(self) -> None:
        self.http.close()


class ClientReads:
    """The reads through a docker-py ``APIClient`` (or a stand-in with the methods a test needs)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    @property
    def timeout(self) -> float:
        return float(self.client.timeout)

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        self.client.timeout = seconds

    def version(self) -> Any:
        return self.client.version()

    def info(self) -> Any:
        return self.client.info()

    def images(self, all: bool = False) -> Any:
        return self.client.images(all=all)

    def containers(self, all: bool = False) -> Any:
        return self.client.containers(all=all)

    def inspect_image(self, image: str) -> Any:
        return self.client.inspect_image(image)

    def inspect_container(self, container: str) -> Any:
        return self.client.inspect_container(container)

    def history(self, image: str) -> Any:
        return self.client.history(image)

    def df(self) -> Any:
        return self.client.df()

    def remove_image(self, image: str) -> Any:
        return self.client.remove_image(image, force=False, noprune=False)

    def get_json(self, path: str, headers: Mapping[str, str] | None = None, *, versioned: bool = True) -> Any:
        url = f"{self.client.base_url}/v{self.client.api_version}{path}" if versioned else f"{self.client.base_url}{path}"
        response = self.client.get(url, headers=dict(headers or {}), timeout=self.client.timeout)
        raise_for_status(response)
        return response.json()

    def get_json_lines(self, path: str, params: Mapping[str, str]) -> Iterator[Any]:
        url = f"{self.client.base_url}/v{self.client.api_version}{path}"
        response = self.client.get(url, params=dict(params), stream=True, timeout=self.client.timeout)
        try:
            raise_for_status(response)
            return iter([json.loads(line) for line in response.iter_lines() if line])
        finally:
            response.close()

    def close(self) -> None:
        self.client.close()


def raise_for_status(response: Any) -> None:
    """docker-py's APIError (ImageNotFound, ...) for an error answer of ``requests``, as its own calls raise it."""
    import docker
    import requests

    try:
        response.raise_for_status()
    except requests.exceptions.HTTPError as exc:
        docker.errors.create_api_error_from_http_exception(exc)
