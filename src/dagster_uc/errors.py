"""Errors the CLI turns into one clear sentence and an exit code (never a traceback)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit


class DagsterUcError(Exception):
    """Base class: the message is shown to the user as is."""

    exit_code = 1


class UsageError(DagsterUcError):
    """Bad input or configuration: exit code 2, nothing changed."""

    exit_code = 2


class ConfigError(UsageError):
    """The configuration file or environment variables are invalid."""


class OperationError(DagsterUcError):
    """An operation against an external system failed: exit code 1."""

    exit_code = 1


#: The API server's words for a refused request (RBAC authorizer).
_FORBIDDEN = re.compile(
    r'cannot (?P<verb>[\w-]+) resource "(?P<resource>[^"]+)"'
    r'(?: in API group "(?P<group>[^"]*)")?(?: in the namespace "(?P<namespace>[^"]+)")?'
)
#: `/api/v1/namespaces/ns/pods/p/log`, `/apis/apps/v1/namespaces/ns/deployments`.
_API_PATH = re.compile(
    r"^/(?:api/v1|apis/(?P<group>[^/]+)/[^/]+)(?:/namespaces/(?P<namespace>[^/]+))?"
    r"/(?P<resource>[^/]+)(?:/(?P<name>[^/]+)(?:/(?P<sub>[^/]+))?)?$"
)
_METHOD_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def missing_permission(
    message: str, method: str | None = None, url: str | None = None
) -> str | None:
    """What a 403 refused, as RBAC names it (`get configmaps in namespace "x"`): from the API
    server's message, else from the request (method and URL); None when neither tells."""
    found = _FORBIDDEN.search(message)
    if found:
        verb, resource, group, namespace = found.group("verb", "resource", "group", "namespace")
    elif method and url:
        parts = urlsplit(url)
        path = _API_PATH.match(parts.path)
        if path is None:
            return None
        group, namespace, resource = path.group("group", "namespace", "resource")
        name, sub = path.group("name", "sub")
        if sub:
            resource = f"{resource}/{sub}"
        query = parse_qs(parts.query)
        if method.upper() == "GET":
            verb = "get" if name else "watch" if query.get("watch") == ["true"] else "list"
        else:
            verb = _METHOD_VERBS.get(method.upper(), method.lower())
    else:
        return None
    qualified = f"{resource}.{group}" if group else resource
    where = f' in namespace "{namespace}"' if namespace else " (cluster-wide)"
    return f"{verb} {qualified}{where}"


def forbidden_note(exc: BaseException) -> str:
    """`; missing permission: ...` for a 403 from the Kubernetes API, else ""."""
    status = getattr(exc, "status", None)
    if getattr(status, "code", None) != 403:
        return ""
    method: str | None = None
    url: str | None = None
    try:
        request = exc.request  # type: ignore[attr-defined]
        method, url = str(request.method), str(request.url)
    except (AttributeError, RuntimeError):
        pass
    return permission_note(str(getattr(status, "message", "") or ""), method, url)


def permission_note(message: str, method: str | None = None, url: str | None = None) -> str:
    """`; missing permission: ...` when `message` (or the request) says what was refused."""
    missing = missing_permission(message, method, url)
    if missing is None:
        return ""
    return f"; missing permission: {missing} (see the Role in docs/permissions.md)"
