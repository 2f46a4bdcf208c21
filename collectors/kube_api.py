"""A small Kubernetes API client: the few verbs the scheduler hooks and the Kubernetes collector
need, over httpx. It lives in collectors/ because the collector (collectors.kubernetes) may not
import service/; the hooks and the service import it from here.

Why not the `kubernetes` package: ctwin reads and patches a handful of objects (pods, nodes,
Kueue Workloads); a 30 MB generated client with its own threads buys nothing here, and raw
JSON keeps CRDs (Workloads) as first-class as core objects.

- `KubeClient.from_config(config)` (any object with the fields of `KubeApiSettings`: the
  hooks' `KubeApiConfig`, the collector's config): an explicit URL + token/CA, a kubeconfig file, or the
  in-cluster service account (KUBERNETES_SERVICE_HOST and /var/run/secrets/kubernetes.io/...).
- `get`, `list`, `create`, `replace`, `patch` (merge, strategic, JSON patch or server-side apply with a field
  manager; `subresource="status"`), `delete`, `watch` (a generator of one watch request's events,
  with label/field selectors; `service.hooks.informer` resumes it from the last resourceVersion and
  relists on 410 Gone).
- An API error is a `KubeError` with the status code and the server's reason and message.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import socket
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx
import yaml
from pydantic import Field

from telemetry.schema import Duration, StrictModel

__all__ = ["KubeApiConfig", "KubeApiSettings", "KubeClient", "KubeError", "PatchType"]

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
PatchType = Literal["merge", "strategic", "json", "apply"]
_PATCH_CONTENT = {
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "json": "application/json-patch+json",
    "apply": "application/apply-patch+yaml",
}


class KubeApiSettings(Protocol):
    """Where the API server is and how to authenticate (the fields `from_config` reads)."""

    @property
    def url(self) -> str | None: ...
    @property
    def kubeconfig(self) -> Path | None: ...
    @property
    def token_file(self) -> Path | None: ...
    @property
    def ca_file(self) -> Path | None: ...
    @property
    def verify_tls(self) -> bool: ...
    @property
    def timeout(self) -> float: ...


class KubeApiConfig(StrictModel):
    """How ctwin reaches a Kubernetes API server: the config block of the scheduler hooks
    (`schedulers.<hook>.api`) and the base of the kubernetes collector's."""

    url: str | None = Field(None, description="https://host:port; default: in-cluster (KUBERNETES_SERVICE_HOST)")
    kubeconfig: Path | None = Field(None, description="Read server, CA and token from this kubeconfig instead")
    token_file: Path | None = Field(None, description="Bearer token, re-read on every request")
    ca_file: Path | None = Field(None, description="CA bundle of the API server's certificate")
    verify_tls: bool = True
    timeout: Duration = Field(5.0, description="Per request")


class KubeError(Exception):
    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class _Credentials:
    url: str
    token: str | None
    token_file: Path | None
    verify: str | bool


class KubeClient:
    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        token_file: Path | None = None,
        ca_file: str | Path | None = None,
        verify_tls: bool = True,
        timeout_s: float = 5.0,
    ) -> None:
        verify: str | bool = str(ca_file) if (ca_file is not None and verify_tls) else verify_tls
        self._creds = _Credentials(url.rstrip("/"), token, token_file, verify)
        self.timeout_s = timeout_s
        self._http = httpx.Client(base_url=self._creds.url, verify=verify, timeout=timeout_s)
        self._watch_socket: socket.socket | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_config(cls, config: KubeApiSettings) -> KubeClient:
        if config.kubeconfig is not None:
            return cls.from_kubeconfig(config.kubeconfig, timeout_s=config.timeout)
        if config.url is not None:
            return cls(
                config.url,
                token_file=config.token_file,
                ca_file=config.ca_file,
                verify_tls=config.verify_tls,
                timeout_s=config.timeout,
            )
        return cls.in_cluster(timeout_s=config.timeout)

    @classmethod
    def in_cluster(cls, *, timeout_s: float = 5.0) -> KubeClient:
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise ValueError(
                "no Kubernetes API configured: set its url or kubeconfig (schedulers.<hook>.api, or the"
                " kubernetes collector), or run in a pod, where KUBERNETES_SERVICE_HOST is set"
            )
        host = f"[{host}]" if ":" in host else host
        return cls(
            f"https://{host}:{port}", token_file=SA_DIR / "token", ca_file=SA_DIR / "ca.crt", timeout_s=timeout_s
        )

    @classmethod
    def from_kubeconfig(cls, path: str | Path, *, timeout_s: float = 5.0) -> KubeClient:
        """The current context's server, CA and bearer token (token or tokenFile users only)."""
        doc = yaml.safe_load(Path(path).read_text()) or {}
        current = doc.get("current-context")
        context = _named(doc.get("contexts"), current, "context", path)
        cluster = _named(doc.get("clusters"), context.get("cluster"), "cluster", path)
        user = _named(doc.get("users"), context.get("user"), "user", path) if context.get("user") else {}
        ca: str | None = cluster.get("certificate-authority")
        if cluster.get("certificate-authority-data"):
            ca = str(_ca_file(base64.b64decode(cluster["certificate-authority-data"])))
        if not (user.get("token") or user.get("tokenFile")) and (user.get("client-certificate") or user.get("exec")):
            raise ValueError(f"{path}: user {context.get('user')!r} has no token; ctwin supports bearer tokens only")
        return cls(
            cluster["server"],
            token=user.get("token"),
            token_file=Path(user["tokenFile"]) if user.get("tokenFile") else None,
            ca_file=ca,
            verify_tls=not cluster.get("insecure-skip-tls-verify", False),
            timeout_s=timeout_s,
        )

    # ------------------------------------------------------------------ verbs
    def get(self, path: str, **params: str) -> dict[str, Any]:
        return self._json("GET", path, params=params)

    def list(
        self, path: str, *, label_selector: str | None = None, field_selector: str | None = None
    ) -> dict[str, Any]:
        params = {k: v for k, v in (("labelSelector", label_selector), ("fieldSelector", field_selector)) if v}
        return self._json("GET", path, params=params)

    def create(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return self._json("POST", path, content=json.dumps(body), content_type="application/json")

    def replace(self, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """PUT: the whole object (with its metadata.resourceVersion, so a concurrent change is a 409)."""
        return self._json("PUT", path, content=json.dumps(body), content_type="application/json")

    def patch(
        self,
        path: str,
        body: Mapping[str, Any] | Sequence[Any],
        *,
        kind: PatchType = "merge",
        field_manager: str | None = None,
        force: bool = False,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        params = {}
        if field_manager:
            params["fieldManager"] = field_manager
        if force:
            params["force"] = "true"
        target = f"{path}/{subresource}" if subresource else path
        return self._json("PATCH", target, params=params, content=json.dumps(body), content_type=_PATCH_CONTENT[kind])

    def delete(self, path: str) -> dict[str, Any]:
        return self._json("DELETE", path)

    def watch(
        self,
        path: str,
        *,
        resource_version: str | None = None,
        timeout_s: int = 60,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Watch events ({"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": ...}) for one
        server-side timeout; the caller loops, passing the last object's resourceVersion
        (service.hooks.informer does: relists on 410 Gone, backs off on errors)."""
        params = {"watch": "true", "timeoutSeconds": str(timeout_s), "allowWatchBookmarks": "true"}
        if resource_version:
            params["resourceVersion"] = resource_version
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        timeout = httpx.Timeout(self.timeout_s, read=timeout_s + 10)
        with self._http.stream("GET", path, params=params, headers=self._headers(), timeout=timeout) as response:
            if response.status_code >= 400:
                response.read()
                raise _error(response)
            stream = response.extensions.get("network_stream")
            self._watch_socket = stream.get_extra_info("socket") if stream is not None else None
            try:
                for line in response.iter_lines():
                    if line.strip():
                        yield json.loads(line)
            finally:
                self._watch_socket = None

    def interrupt(self) -> None:
        """End a watch blocked in another thread now (closing the client does not: a read blocked on
        the socket waits for the server's timeout). The watch then raises an httpx error."""
        sock = self._watch_socket
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> KubeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing
    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        token = self._creds.token
        if self._creds.token_file is not None:  # re-read: projected service-account tokens rotate
            token = self._creds.token_file.read_text().strip()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def _json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        content: str | None = None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        response = self._http.request(method, path, params=params, content=content, headers=self._headers(content_type))
        if response.status_code >= 400:
            raise _error(response)
        return response.json() if response.content else {}


def _error(response: httpx.Response) -> KubeError:
    try:
        status = response.json()
        return KubeError(response.status_code, str(status.get("reason", "")), str(status.get("message", response.text)))
    except ValueError:
        return KubeError(response.status_code, response.reason_phrase, response.text[:500])


def _ca_file(data: bytes) -> Path:
    """The CA bundle as a file httpx can read: one file per bundle, so clients made again and again
    (the informers make one after every error) do not leave a temporary file each."""
    path = Path(tempfile.gettempdir()) / f"ctwin-kube-ca-{os.getuid()}-{hashlib.sha256(data).hexdigest()[:16]}.crt"
    if not path.exists() or path.read_bytes() != data:
        handle = tempfile.NamedTemporaryFile("wb", suffix=".crt", dir=path.parent, delete=False)  # noqa: SIM115
        handle.write(data)
        handle.close()
        os.replace(handle.name, path)
    return path


def _named(items: Any, name: Any, what: str, path: str | Path) -> dict[str, Any]:
    for item in items or []:
        if item.get("name") == name:
            return dict(item.get(what) or {})
    raise ValueError(f"{path}: no {what} named {name!r}")
