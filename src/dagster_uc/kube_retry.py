"""Bounded retries of idempotent Kubernetes API reads.

An API server behind a load balancer answers the odd 500/502/503/504 or drops a connection
(an apiserver restart, an etcd leader election). Reads (GET) are safe to repeat, so they are
retried a few times with a short backoff before the failure reaches the command; writes are
never repeated here: they are compare-and-swap writes whose callers decide what a failure
means. Imported only when a cluster command builds its client (httpx2 is loaded lazily).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx2

#: Answers that mean "try again" rather than "no".
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Pause before each retry (so at most len + 1 attempts); Retry-After is honoured up to the cap.
RETRY_DELAYS_S = (0.2, 0.5, 1.0)
RETRY_AFTER_CAP_S = 3.0
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD"})


def retry_after_s(value: str | None, default: float) -> float:
    """The pause a Retry-After header asks for (seconds form only), capped; `default` otherwise."""
    try:
        seconds = float(value) if value is not None else default
    except ValueError:
        return default
    return max(0.0, min(seconds, RETRY_AFTER_CAP_S))


class RetryingTransport(httpx2.BaseTransport):
    """Wraps a transport; repeats GET/HEAD on transient statuses and connection failures."""

    def __init__(
        self,
        inner: httpx2.BaseTransport,
        delays: tuple[float, ...] = RETRY_DELAYS_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.inner = inner
        self.delays = delays
        self._sleep = sleep

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        if request.method not in IDEMPOTENT_METHODS:
            return self.inner.handle_request(request)
        for delay in self.delays:
            try:
                response = self.inner.handle_request(request)
            except (httpx2.NetworkError, httpx2.RemoteProtocolError):
                self._pause(delay)
                continue
            if response.status_code not in RETRY_STATUSES:
                return response
            pause = retry_after_s(response.headers.get("Retry-After"), delay)
            response.close()
            self._pause(pause)
        return self.inner.handle_request(request)

    def _pause(self, seconds: float) -> None:
        self._sleep(seconds)

    def close(self) -> None:
        self.inner.close()
