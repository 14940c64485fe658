"""Decode Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`).

Go typed clients (kubectl create configmap/secret/namespace, Helm's release Secrets, client-go
leader election) send `k8s\\x00` + a `runtime.Unknown` whose `raw` field holds the typed
message. A tiny wire-format reader plus field tables taken from k8s.io/api generated.proto
turn the kinds we need into the same dicts a JSON body would give.
"""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from typing import Any

MAGIC = b"k8s\x00"


class ProtobufError(ValueError):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ProtobufError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def fields(buf: bytes) -> list[tuple[int, int, Any]]:
    """Raw (field number, wire type, value) triples; value is int or bytes."""
    out: list[tuple[int, int, Any]] = []
    pos = 0
    val: Any
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        num, wt = key >> 3, key & 7
        if wt == 0:
            val, pos = _varint(buf, pos)
        elif wt == 1:
            val, pos = int.from_bytes(buf[pos : pos + 8], "little"), pos + 8
        elif wt == 2:
            n, pos = _varint(buf, pos)
            val, pos = buf[pos : pos + n], pos + n
        elif wt == 5:
            val, pos = int.from_bytes(buf[pos : pos + 4], "little"), pos + 4
        else:
            raise ProtobufError(f"unsupported wire type {wt}")
        out.append((num, wt, val))
    return out


# Schema: field number -> (json name, type). Types: "str", "bytes" (base64 in JSON), "int",
# "bool", "time", a nested schema dict, ("map", value type), ("list", type).
TIME = "time"
OWNER_REF = {
    1: ("kind", "str"),
    3: ("name", "str"),
    4: ("uid", "str"),
    5: ("apiVersion", "str"),
    6: ("controller", "bool"),
    7: ("blockOwnerDeletion", "bool"),
}
OBJECT_META = {
    1: ("name", "str"),
    2: ("generateName", "str"),
    3: ("namespace", "str"),
    4: ("selfLink", "str"),
    5: ("uid", "str"),
    6: ("resourceVersion", "str"),
    7: ("generation", "int"),
    8: ("creationTimestamp", TIME),
    9: ("deletionTimestamp", TIME),
    10: ("deletionGracePeriodSeconds", "int"),
    11: ("labels", ("map", "str")),
    12: ("annotations", ("map", "str")),
    13: ("ownerReferences", ("list", OWNER_REF)),
    14: ("finalizers", ("list", "str")),
}
LOCAL_REF = {1: ("name", "str")}
OBJECT_REF = {
    1: ("kind", "str"),
    2: ("namespace", "str"),
    3: ("name", "str"),
    4: ("uid", "str"),
    5: ("apiVersion", "str"),
    6: ("resourceVersion", "str"),
    7: ("fieldPath", "str"),
}
SCHEMAS: dict[str, dict[int, tuple[str, Any]]] = {
    "ConfigMap": {
        1: ("metadata", OBJECT_META),
        2: ("data", ("map", "str")),
        3: ("binaryData", ("map", "bytes")),
        4: ("immutable", "bool"),
    },
    "Secret": {
        1: ("metadata", OBJECT_META),
        2: ("data", ("map", "bytes")),
        3: ("type", "str"),
        4: ("stringData", ("map", "str")),
        5: ("immutable", "bool"),
    },
    "Namespace": {
        1: ("metadata", OBJECT_META),
        2: ("spec", {1: ("finalizers", ("list", "str"))}),
        3: ("status", {1: ("phase", "str")}),
    },
    "ServiceAccount": {
        1: ("metadata", OBJECT_META),
        2: ("secrets", ("list", OBJECT_REF)),
        3: ("imagePullSecrets", ("list", LOCAL_REF)),
        4: ("automountServiceAccountToken", "bool"),
    },
    "Lease": {
        1: ("metadata", OBJECT_META),
        2: (
            "spec",
            {
                1: ("holderIdentity", "str"),
                2: ("leaseDurationSeconds", "int"),
                3: ("acquireTime", "microtime"),
                4: ("renewTime", "microtime"),
                5: ("leaseTransitions", "int"),
                6: ("strategy", "str"),
                7: ("preferredHolder", "str"),
            },
        ),
    },
    "DeleteOptions": {
        1: ("gracePeriodSeconds", "int"),
        2: ("preconditions", {1: ("uid", "str"), 2: ("resourceVersion", "str")}),
        3: ("orphanDependents", "bool"),
        4: ("propagationPolicy", "str"),
        5: ("dryRun", ("list", "str")),
    },
}


def _time(buf: bytes, micro: bool) -> str | None:
    parts = {n: v for n, _, v in fields(buf)}
    if not parts.get(1):
        return None  # the zero time
    ts = datetime.fromtimestamp(parts.get(1, 0), tz=timezone.utc)
    if micro:
        nanos = parts.get(2, 0)
        return ts.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos // 1000:06d}Z"
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _scalar(typ: Any, wt: int, val: Any) -> Any:
    if typ == "str":
        return val.decode("utf-8")
    if typ == "bytes":
        return base64.b64encode(val).decode()
    if typ == "int":
        return val - (1 << 64) if val >= 1 << 63 else val
    if typ == "bool":
        return bool(val)
    if typ in (TIME, "microtime"):
        return _time(val, typ == "microtime")
    if isinstance(typ, dict):
        return decode_message(val, typ)
    raise ProtobufError(f"unknown field type {typ!r}")


def decode_message(buf: bytes, schema: dict[int, tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for num, wt, val in fields(buf):
        if num not in schema:
            continue
        name, typ = schema[num]
        if isinstance(typ, tuple) and typ[0] == "map":
            entry = {n: v for n, _, v in fields(val)}
            key = entry.get(1, b"").decode("utf-8")
            out.setdefault(name, {})[key] = _scalar(typ[1], 2, entry.get(2, b""))
        elif isinstance(typ, tuple) and typ[0] == "list":
            out.setdefault(name, []).append(_scalar(typ[1], wt, val))
        else:
            value = _scalar(typ, wt, val)
            if value not in ("", None):  # Go omits empty optional fields in JSON
                out[name] = value
    return out


def decode(body: bytes) -> dict[str, Any]:
    """A protobuf request body as the equivalent JSON object; raises ProtobufError."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing k8s protobuf magic prefix")
    unknown = {n: v for n, _, v in fields(body[len(MAGIC) :])}
    type_meta = {n: v.decode() for n, _, v in fields(unknown.get(1, b""))}
    api_version, kind = type_meta.get(1, ""), type_meta.get(2, "")
    if kind not in SCHEMAS:
        raise ProtobufError(f"protobuf bodies for kind {kind!r} are not supported by the emulator")
    obj = decode_message(unknown.get(2, b""), SCHEMAS[kind])
    if kind != "DeleteOptions":
        obj = {"apiVersion": api_version, "kind": kind, **obj}
    return obj


# --- encoder, used by the tests to build request bodies like client-go does -------------


def _key(num: int, wt: int) -> bytes:
    return _enc_varint(num << 3 | wt)


def _enc_varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _ld(num: int, data: bytes) -> bytes:
    return _key(num, 2) + _enc_varint(len(data)) + data


def encode_message(obj: dict[str, Any], schema: dict[int, tuple[str, Any]]) -> bytes:
    out = b""
    for num, (name, typ) in sorted(schema.items()):
        if name not in obj:
            continue
        val = obj[name]
        if isinstance(typ, tuple) and typ[0] == "map":
            for k, v in val.items():
                out += _ld(num, _ld(1, k.encode()) + _enc_scalar(2, typ[1], v))
        elif isinstance(typ, tuple) and typ[0] == "list":
            for v in val:
                out += _enc_scalar(num, typ[1], v)
        else:
            out += _enc_scalar(num, typ, val)
    return out


def _enc_scalar(num: int, typ: Any, val: Any) -> bytes:
    if typ == "str":
        return _ld(num, val.encode())
    if typ == "bytes":
        return _ld(num, base64.b64decode(val))
    if typ in ("int", "bool"):
        return _key(num, 0) + _enc_varint(int(val))
    if typ in (TIME, "microtime"):
        dt = datetime.fromisoformat(val.replace("Z", "+00:00"))
        sub = _key(1, 0) + _enc_varint(int(dt.timestamp()))
        if dt.microsecond:
            sub += _key(2, 0) + _enc_varint(dt.microsecond * 1000)
        return _ld(num, sub)
    return _ld(num, encode_message(val, typ))


def encode(obj: dict[str, Any], kind: str | None = None, api_version: str = "v1") -> bytes:
    """The protobuf body client-go would send for `obj` (tests only)."""
    kind = kind or obj["kind"]
    type_meta = _ld(1, (obj.get("apiVersion") or api_version).encode()) + _ld(2, kind.encode())
    raw = encode_message(obj, SCHEMAS[kind])
    unknown = _ld(1, type_meta) + _ld(2, raw) + _ld(3, b"") + _ld(4, b"")
    return MAGIC + unknown
