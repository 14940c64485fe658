"""Regenerate `protoschema.json`, the field tables the protobuf decoder uses.

Go programs built with k8s.io/api (kubectl, helm) embed the gzipped FileDescriptorProto of
every `generated.proto` they link, including the gogoproto options that say which fields are
value types (`nullable=false`, always encoded) and which are pointers (encoded only when
set). This script pulls those descriptors out of a kubectl binary and keeps, for the messages
reachable from the kinds the emulator serves, `[number, json name, type, flags]` per field:

    .venv/bin/python -m stack.emulator.protogen .cache/tools/bin/kubectl

Types are `string`, `int`, `uint`, `bool`, `bytes`, `double`, `float` or a message name
(package prefixes `k8s.io.api.` / `k8s.io.apimachinery.pkg.` dropped); flags: `r` repeated,
`m` map (string keys, the type is the value type), `v` value type (nullable=false),
`i` inline (an embedded struct whose fields the JSON object holds directly).
"""

from __future__ import annotations

import json
import re
import sys
import zlib
from pathlib import Path
from typing import Any

from .protobuf import fields, package_of
from .resources import RESOURCES

OUT = Path(__file__).with_name("protoschema.json")
GZIP_HEADER = re.compile(rb"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff")
SCALARS = {
    1: "double",
    2: "float",
    3: "int",
    4: "uint",
    5: "int",
    13: "uint",
    8: "bool",
    9: "string",
    12: "bytes",
    17: "int",
    18: "int",
}
GOGO_NULLABLE = 65001
GOGO_CUSTOMNAME = 65004
# Go structs embedded with `json:",inline"`: their fields belong to the parent JSON object.
INLINE_TYPES = {
    "LocalObjectReference",
    "VolumeSource",
    "ProbeHandler",
    "IngressRuleValue",
    "EphemeralContainerCommon",
    "PersistentVolumeSource",
}
# Kinds sent as request bodies that are not stored resources.
EXTRA_KINDS = {"apis.meta.v1.DeleteOptions", "autoscaling.v1.Scale", "policy.v1.Eviction"}


def short(name: str) -> str:
    name = name.lstrip(".")
    for prefix in ("k8s.io.api.", "k8s.io.apimachinery.pkg."):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def descriptors(binary: bytes) -> list[bytes]:
    """The gzipped k8s FileDescriptorProtos embedded in a Go binary."""
    out = []
    for m in GZIP_HEADER.finditer(binary):
        try:
            data = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(binary[m.start() :])
        except zlib.error:
            continue
        if b"k8s.io/" in data[:80] and b"generated.proto" in data[:120]:
            out.append(data)
    return out


def _str(msg: list[tuple[int, int, Any]], num: int) -> str:
    return next((v.decode() for n, _, v in msg if n == num), "")


def _int(msg: list[tuple[int, int, Any]], num: int) -> int:
    return next((v for n, _, v in msg if n == num), 0)


def messages(files: list[bytes]) -> dict[str, list[list[Any]]]:
    """Field tables of every message in the descriptors, maps resolved to value types."""
    raw: dict[str, list[tuple[int, int, Any]]] = {}
    map_entries: set[str] = set()

    def collect(prefix: str, body: bytes) -> None:
        msg = fields(body)
        name = f"{prefix}.{_str(msg, 1)}"
        raw[name] = msg
        opts = next((v for n, _, v in msg if n == 7), b"")
        if any(n == 7 and v for n, _, v in fields(opts)):
            map_entries.add(name)
        for n, _, v in msg:
            if n == 3:
                collect(name, v)

    for data in files:
        fd = fields(data)
        package = _str(fd, 2)
        for n, _, v in fd:
            if n == 4:
                collect(package, v)

    def field_type(f: list[tuple[int, int, Any]]) -> str:
        t = _int(f, 5)
        return short(_str(f, 6)) if t == 11 else SCALARS.get(t, "unknown")

    out: dict[str, list[list[Any]]] = {}
    for name, msg in raw.items():
        if name in map_entries:
            continue
        table = []
        for n, _, v in msg:
            if n != 2:
                continue
            f = fields(v)
            typ, flags = field_type(f), ""
            type_name = _str(f, 6).lstrip(".")
            if type_name in map_entries:
                value = next(
                    fields(x) for k, _, x in raw[type_name] if k == 2 and _int(fields(x), 3) == 2
                )
                typ, flags = field_type(value), "m"
            elif _int(f, 4) == 3:
                flags = "r"
            opts = fields(next((x for k, _, x in f if k == 8), b""))
            if any(k == GOGO_NULLABLE and x == 0 for k, _, x in opts):
                flags += "v"
                go_name = next((x.decode() for k, _, x in opts if k == GOGO_CUSTOMNAME), "")
                if go_name in INLINE_TYPES and typ.endswith("." + go_name):
                    flags += "i"
            table.append([_int(f, 3), _str(f, 1), typ, flags])
        out[short(name)] = table
    return out


def reachable(all_msgs: dict[str, list[list[Any]]]) -> dict[str, list[list[Any]]]:
    roots = set(EXTRA_KINDS)
    roots |= {f"{package_of(r.group_version)}.{r.kind}" for r in RESOURCES}
    roots |= {f"{package_of(r.group_version)}.{r.kind}List" for r in RESOURCES} & set(all_msgs)
    keep: dict[str, list[list[Any]]] = {}
    todo = sorted(roots & set(all_msgs))
    while todo:
        name = todo.pop()
        if name in keep:
            continue
        keep[name] = all_msgs[name]
        todo += [f[2] for f in keep[name] if f[2] in all_msgs and f[2] not in keep]
    return dict(sorted(keep.items()))


def render(binary: bytes) -> str:
    """The text of protoschema.json for the descriptors in a kubectl binary."""
    keep = reachable(messages(descriptors(binary)))
    lines = ",\n".join(
        f"{json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}" for k, v in keep.items()
    )
    return "{\n" + lines + "\n}\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m stack.emulator.protogen KUBECTL_BINARY", file=sys.stderr)
        return 2
    text = render(Path(argv[0]).read_bytes())
    if '"apps.v1.Deployment"' not in text:
        print(f"no Kubernetes protobuf descriptors found in {argv[0]}", file=sys.stderr)
        return 1
    OUT.write_text(text)
    print(f"{text.count(chr(10)) - 2} messages -> {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
