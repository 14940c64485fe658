"""Decode Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`).

Go typed clients (kubectl create/run/expose/scale/autoscale, Helm's release Secrets, client-go
leader election) send `k8s\\x00` + a `runtime.Unknown` whose `raw` field holds the typed
message. A tiny wire-format reader walks the message with the field tables in
`protoschema.json` (extracted from the descriptors kubectl embeds; see `protogen.py`) and
builds the dict Go's JSON encoder would print for the same object:

- pointer fields (`nullable`) appear exactly when sent, zero values included (`replicas: 0`);
- value-type scalars are always on the wire, so their zero values are dropped (`omitempty`);
- value-type structs always appear (`resources: {}`), a zero `metav1.Time` as null;
- `Time`/`MicroTime`, `Duration`, `IntOrString`, `Quantity`, `RawExtension` and `FieldsV1`
  get their JSON forms; unknown fields are skipped.
"""

from __future__ import annotations

import base64
import json
import struct
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any

MAGIC = b"k8s\x00"
SCHEMA_FILE = Path(__file__).with_name("protoschema.json")

TIME = "apis.meta.v1.Time"
MICROTIME = "apis.meta.v1.MicroTime"
DURATION = "apis.meta.v1.Duration"
INTSTR = "util.intstr.IntOrString"
QUANTITY = "api.resource.Quantity"
RAW_EXTENSION = "runtime.RawExtension"
FIELDS_V1 = "apis.meta.v1.FieldsV1"
DELETE_OPTIONS = "apis.meta.v1.DeleteOptions"
SPECIAL = {TIME, MICROTIME, DURATION, INTSTR, QUANTITY, RAW_EXTENSION, FIELDS_V1}

# json name, type, flags: "r" repeated, "m" map, "v" value type, "i" inline (embedded struct)
Field = tuple[str, str, str]


class ProtobufError(ValueError):
    pass


@cache
def tables() -> dict[str, dict[int, Field]]:
    """Message name -> field number -> (json name, type, flags)."""
    raw: dict[str, list[list[Any]]] = json.loads(SCHEMA_FILE.read_text())
    return {msg: {f[0]: (f[1], f[2], f[3]) for f in fs} for msg, fs in raw.items()}


def package_of(api_version: str) -> str:
    """The proto package (prefix dropped) of an apiVersion: `apps/v1` -> `apps.v1`."""
    group, _, version = api_version.rpartition("/")
    first = group.split(".")[0] if group else "core"
    return {"internal": "apiserverinternal"}.get(first, first) + "." + version


def message_for(api_version: str, kind: str) -> str | None:
    if kind == "DeleteOptions":
        return DELETE_OPTIONS
    name = f"{package_of(api_version)}.{kind}"
    return name if name in tables() else None


# --- wire format --------------------------------------------------------------------------


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
            val, pos = buf[pos : pos + 8], pos + 8
        elif wt == 2:
            n, pos = _varint(buf, pos)
            val, pos = buf[pos : pos + n], pos + n
        elif wt == 5:
            val, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ProtobufError(f"unsupported wire type {wt}")
        if pos > len(buf):
            raise ProtobufError("truncated message")
        out.append((num, wt, val))
    return out


# --- decoding -----------------------------------------------------------------------------


def _signed(n: int) -> int:
    return n - (1 << 64) if n >= 1 << 63 else n


def _format_time(seconds: int, nanos: int, micro: bool) -> str | None:
    if not seconds and not nanos:
        return None  # Go's zero time prints as null
    ts = datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return ts + (f".{nanos // 1000:06d}Z" if micro else "Z")


def format_duration(ns: int) -> str:
    """Go's time.Duration.String()."""
    if ns == 0:
        return "0s"
    sign, ns = ("-" if ns < 0 else ""), abs(ns)

    def frac(value: int, unit: int) -> str:
        whole, rest = divmod(value, unit)
        digits = f"{rest:0{len(str(unit)) - 1}d}".rstrip("0")
        return f"{whole}.{digits}" if digits else str(whole)

    if ns < 1000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return f"{sign}{frac(ns, 1000)}µs"
    if ns < 1_000_000_000:
        return f"{sign}{frac(ns, 1_000_000)}ms"
    hours, ns = divmod(ns, 3600 * 10**9)
    minutes, ns = divmod(ns, 60 * 10**9)
    out = f"{hours}h" if hours else ""
    out += f"{minutes}m" if hours or minutes else ""
    return f"{sign}{out}{frac(ns, 10**9)}s"


def _special(typ: str, buf: bytes) -> Any:
    parts: dict[int, Any] = {n: v for n, _, v in fields(buf)}
    if typ in (TIME, MICROTIME):
        return _format_time(_signed(parts.get(1, 0)), parts.get(2, 0), typ == MICROTIME)
    if typ == DURATION:
        return format_duration(_signed(parts.get(1, 0)))
    if typ == INTSTR:
        if parts.get(1, 0) == 1:
            return parts.get(3, b"").decode("utf-8")
        return _signed(parts.get(2, 0))
    if typ == QUANTITY:
        return parts.get(1, b"0").decode("utf-8")
    raw = parts.get(1, b"")
    if not raw:
        return None if typ == FIELDS_V1 else {}
    try:
        return json.loads(raw)
    except ValueError as e:
        raise ProtobufError(f"{typ} holds no JSON") from e


def _value(typ: str, wt: int, val: Any) -> Any:
    if typ == "string":
        return val.decode("utf-8")
    if typ == "bytes":
        return base64.b64encode(val).decode()
    if typ == "int":
        return _signed(val)
    if typ == "uint":
        return val
    if typ == "bool":
        return bool(val)
    if typ == "double":
        return struct.unpack("<d", val)[0]
    if typ == "float":
        return struct.unpack("<f", val)[0]
    if typ in SPECIAL:
        return _special(typ, val)
    if typ in tables():
        return decode_message(val, typ)
    raise ProtobufError(f"unknown field type {typ!r}")


def _zero(typ: str) -> Any:
    return {"string": "", "bytes": "", "int": 0, "uint": 0, "bool": False}.get(typ, {})


def _is_zero(typ: str, value: Any) -> bool:
    if typ in ("string", "bytes", "int", "uint", "bool", "double", "float"):
        return not value
    return typ == INTSTR and value == 0


def _repeated(typ: str, wt: int, val: Any) -> list[Any]:
    if wt == 2 and typ in ("int", "uint", "bool"):  # packed
        out, pos = [], 0
        while pos < len(val):
            n, pos = _varint(val, pos)
            out.append(_value(typ, 0, n))
        return out
    return [_value(typ, wt, val)]


def decode_message(buf: bytes, message: str) -> dict[str, Any]:
    """One message as its JSON dict, following the field table of `message`."""
    table = tables()[message]
    out: dict[str, Any] = {}
    for num, wt, val in fields(buf):
        field = table.get(num)
        if field is None:
            continue
        name, typ, flags = field
        if "m" in flags:
            entry = {n: (w, v) for n, w, v in fields(val)}
            key = entry[1][1].decode("utf-8") if 1 in entry else ""
            value = _value(typ, *entry[2]) if 2 in entry else _zero(typ)
            out.setdefault(name, {})[key] = value
        elif "r" in flags:
            out.setdefault(name, []).extend(_repeated(typ, wt, val))
        elif "i" in flags:
            out.update(decode_message(val, typ))
        else:
            value = _value(typ, wt, val)
            if "v" in flags and _is_zero(typ, value):
                continue  # always encoded; Go's JSON omits the zero value
            out[name] = value
    return out


def decode(body: bytes) -> dict[str, Any]:
    """A protobuf request body as the equivalent JSON object; raises ProtobufError."""
    if not body.startswith(MAGIC):
        raise ProtobufError("missing k8s protobuf magic prefix")
    unknown = {n: v for n, _, v in fields(body[len(MAGIC) :])}
    type_meta = {n: v.decode() for n, _, v in fields(unknown.get(1, b""))}
    api_version, kind = type_meta.get(1, ""), type_meta.get(2, "")
    message = message_for(api_version, kind)
    if message is None:
        raise ProtobufError(
            f"protobuf bodies for {api_version} {kind!r} are not supported by the emulator"
        )
    obj = decode_message(unknown.get(2, b""), message)
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


def _enc_time(val: str | None) -> bytes:
    if not val:
        return b""
    dt = datetime.fromisoformat(val.replace("Z", "+00:00"))
    out = _key(1, 0) + _enc_varint(int(dt.timestamp()))
    if dt.microsecond:
        out += _key(2, 0) + _enc_varint(dt.microsecond * 1000)
    return out


def _enc_special(typ: str, val: Any) -> bytes:
    if typ in (TIME, MICROTIME):
        return _enc_time(val or None)
    if typ == INTSTR:
        if val == {}:
            val = 0
        if isinstance(val, str):
            return _key(1, 0) + _enc_varint(1) + _ld(3, val.encode())
        return _key(1, 0) + _enc_varint(0) + _key(2, 0) + _enc_varint(val)
    if typ == QUANTITY:
        return _ld(1, str(val or "0").encode())
    if typ == DURATION:
        raise ProtobufError("encoding durations is not supported")
    return _ld(1, json.dumps(val).encode()) if val else b""


def _enc_value(num: int, typ: str, val: Any) -> bytes:
    if typ == "string":
        return _ld(num, val.encode())
    if typ == "bytes":
        return _ld(num, base64.b64decode(val))
    if typ in ("int", "uint", "bool"):
        return _key(num, 0) + _enc_varint(int(val))
    if typ == "double":
        return _key(num, 1) + struct.pack("<d", val)
    if typ == "float":
        return _key(num, 5) + struct.pack("<f", val)
    if typ in SPECIAL:
        return _ld(num, _enc_special(typ, val))
    return _ld(num, encode_message(val, typ))


def encode_message(obj: dict[str, Any], message: str) -> bytes:
    out = b""
    for num, (name, typ, flags) in sorted(tables()[message].items()):
        if "i" in flags:
            out += _ld(num, encode_message(obj, typ))
            continue
        if name not in obj or obj[name] is None:
            if "v" in flags and not flags.startswith(("r", "m")):
                out += _enc_value(num, typ, _zero(typ))  # gogo always writes value types
            continue
        val = obj[name]
        if "m" in flags:
            for k, v in val.items():
                out += _ld(num, _ld(1, k.encode()) + _enc_value(2, typ, v))
        elif "r" in flags:
            for v in val:
                out += _enc_value(num, typ, v)
        else:
            out += _enc_value(num, typ, val)
    return out


def encode(obj: dict[str, Any], kind: str | None = None, api_version: str = "v1") -> bytes:
    """The protobuf body client-go would send for `obj` (tests only)."""
    kind = kind or obj["kind"]
    api_version = obj.get("apiVersion") or api_version
    message = message_for(api_version, kind)
    if message is None:
        raise ProtobufError(f"no protobuf schema for {api_version} {kind}")
    type_meta = _ld(1, api_version.encode()) + _ld(2, kind.encode())
    raw = encode_message(obj, message)
    unknown = _ld(1, type_meta) + _ld(2, raw) + _ld(3, b"") + _ld(4, b"")
    return MAGIC + unknown
