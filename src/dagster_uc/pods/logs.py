"""Reading and following one container's log.

Every read names its container (`container=`): the API server answers 400 to a log read
without one on a pod of several containers (a service-mesh sidecar makes two).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from dagster_uc.errors import OperationError, forbidden_note
from dagster_uc.pods.model import CODE_SERVER_STARTED

if TYPE_CHECKING:
    from lightkube import Client

BACKOFF_START_S = 0.2
BACKOFF_MAX_S = 2.0
BACKOFF_FACTOR = 1.5
#: The API server's 400 for a container that is not named or not in the pod.
_NO_SUCH_CONTAINER = re.compile(r"a container name must be specified|is not valid for pod")
#: Longest silence a followed log stream may block before the deadline is checked again.
_FOLLOW_SLICE_S = 1.0


def backoff() -> Iterator[float]:
    """0.2 s, 0.3 s, ... growing by half up to 2 s."""
    delay = BACKOFF_START_S
    while True:
        yield delay
        delay = min(delay * BACKOFF_FACTOR, BACKOFF_MAX_S)


def api_error(action: str, exc: Exception) -> OperationError:
    """`Could not <action>: <the API server's message>.`"""
    status = getattr(exc, "status", None)
    message = getattr(status, "message", None) or str(exc)
    return OperationError(f"Could not {action}: {message}{forbidden_note(exc)}.")


def _open_log_stream(
    client: Client, ns: str, pod: str, params: dict[str, Any], read_timeout: float | None
) -> Any:
    """A streamed pod-log response with our own read timeout.

    `Client.log` disables the read timeout when following and has no `previous`; this builds
    the same request through lightkube's request helpers with the parameters we need.
    """
    import httpx2
    from lightkube.resources.core_v1 import PodLog

    inner = client._client
    br = inner.prepare_request("get", PodLog, name=pod, namespace=ns, params=params)
    br.timeout = httpx2.Timeout(10.0, read=read_timeout)
    resp = inner.send(inner.build_adapter_request(br), stream=True)
    if resp.is_error:
        resp.read()
        resp.close()
        inner.raise_for_status(resp)
    return resp


def _params(container: str | None, **params: Any) -> dict[str, Any]:
    if container:
        params["container"] = container
    return params


def pod_logs(
    client: Client,
    ns: str,
    pod: str,
    tail_lines: int = 50,
    *,
    previous: bool = False,
    container: str | None = None,
) -> str:
    """The last `tail_lines` log lines of `pod`'s `container` ("" when it has not started yet).

    Other refusals (403 without `pods/log`, 5xx) raise an OperationError naming the pod."""
    from lightkube import ApiError

    params = _params(container, tailLines=tail_lines)
    if previous:
        params["previous"] = "true"
    try:
        resp = _open_log_stream(client, ns, pod, params, read_timeout=30.0)
    except ApiError as exc:
        if exc.status.code in (400, 404):
            return ""
        raise api_error(f"read the log of pod {pod}", exc) from exc
    try:
        return "\n".join(resp.iter_lines())
    finally:
        resp.close()


def follow_logs_until(
    client: Client,
    ns: str,
    pod: str,
    pattern: re.Pattern[str] = CODE_SERVER_STARTED,
    timeout_s: float = 60.0,
    on_line: Callable[[str], None] | None = None,
    *,
    container: str | None = None,
) -> bool:
    """Follow `pod`'s log until a line matches `pattern` (True) or `timeout_s` passes (False).

    Streams with `follow=true` and a short read timeout, so a silent pod never blocks past
    the deadline; reconnects when the stream ends or stalls (the container restarted or has
    not started yet). `on_line` sees each line once.
    """
    import httpx2
    from lightkube import ApiError

    deadline = time.monotonic() + timeout_s
    delivered = 0
    delays = backoff()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        try:
            resp = _open_log_stream(
                client,
                ns,
                pod,
                _params(container, follow="true"),
                read_timeout=min(remaining, _FOLLOW_SLICE_S),
            )
        except ApiError as exc:
            if exc.status.code == 404:
                raise OperationError(f"Pod {pod} does not exist in namespace {ns}.") from exc
            if exc.status.code != 400:
                raise api_error(f"follow the log of pod {pod}", exc) from exc
            if _NO_SUCH_CONTAINER.search(exc.status.message or ""):  # never recovers by waiting
                raise OperationError(
                    f"Cannot read the log of pod {pod}: {exc.status.message}; set "
                    "code_server_container_name to the code server's container."
                ) from exc
            resp = None
        except httpx2.TransportError:
            resp = None
        if resp is not None:
            try:
                for index, line in enumerate(resp.iter_lines(), start=1):
                    if index > delivered:
                        delivered = index
                        if on_line is not None:
                            on_line(line)
                    if pattern.search(line):
                        return True
                    if time.monotonic() >= deadline:
                        return False
                    delays = backoff()
            except httpx2.ReadTimeout:
                continue
            except httpx2.TransportError:
                pass
            finally:
                resp.close()
        time.sleep(max(0.0, min(next(delays), deadline - time.monotonic())))
