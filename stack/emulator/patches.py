"""The four PATCH flavours: JSON merge, JSON patch, strategic merge, and server-side apply.

Strategic merge and apply share one notion of "associative list": a list whose items are
identified by a key field (containers by `name`, container ports by `containerPort`, ...).
Server-side apply remembers, per field manager, the set of field paths it applied last
(stored as real `metadata.managedFields` entries, FieldsV1 format) and prunes the paths a
manager stops applying, which is what makes Helm 4 upgrades drop removed fields.
"""

from __future__ import annotations

import copy
import json
from typing import Any


class PatchError(ValueError):
    """A patch that cannot be applied (answered 422 or 400 by the server)."""


# --- shared: associative list keys ------------------------------------------------------

_NAME_KEYED = {
    "containers",
    "initContainers",
    "ephemeralContainers",
    "env",
    "volumes",
    "imagePullSecrets",
    "secrets",
}
_KEYS: dict[str, tuple[str, ...]] = {
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "conditions": ("type",),
    "ownerReferences": ("uid",),
    "hostAliases": ("ip",),
    "topologySpreadConstraints": ("topologyKey", "whenUnsatisfiable"),
    "readinessGates": ("conditionType",),
}


def list_key(field: str, items: list[Any]) -> tuple[str, ...] | None:
    """The merge key of list `field`, or None for an atomic (replace-whole) list."""
    if not items or not all(isinstance(i, dict) for i in items):
        items = []
    if field in _NAME_KEYED:
        return ("name",)
    if field in _KEYS:
        return _KEYS[field]
    if field == "ports":
        if any("containerPort" in i for i in items):
            return ("containerPort",)
        return ("port",)
    return None


def _item_id(item: Any, key: tuple[str, ...]) -> tuple[Any, ...] | None:
    if not isinstance(item, dict):
        return None
    return tuple(item.get(k) for k in key)


# --- JSON merge patch (RFC 7386) --------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        else:
            result[k] = merge_patch(result.get(k), v)
    return result


# --- JSON patch (RFC 6902) --------------------------------------------------------------


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str]) -> Any:
    for p in parts:
        if isinstance(doc, list):
            try:
                doc = doc[int(p)]
            except (ValueError, IndexError) as e:
                raise PatchError(f"index {p} out of range") from e
        elif isinstance(doc, dict) and p in doc:
            doc = doc[p]
        else:
            raise PatchError(f"doc is missing path: /{'/'.join(parts)}")
    return doc


def json_patch(doc: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise PatchError("json patch must be a list of operations")
    doc = copy.deepcopy(doc)

    def add(parts: list[str], value: Any) -> Any:
        nonlocal doc
        if not parts:
            doc = value
            return
        parent = _walk(doc, parts[:-1])
        last = parts[-1]
        if isinstance(parent, list):
            idx = len(parent) if last == "-" else int(last)
            if idx > len(parent):
                raise PatchError("index out of range")
            parent.insert(idx, value)
        elif isinstance(parent, dict):
            parent[last] = value
        else:
            raise PatchError("cannot add to a scalar")

    def remove(parts: list[str]) -> Any:
        parent = _walk(doc, parts[:-1])
        last = parts[-1]
        try:
            return parent.pop(int(last) if isinstance(parent, list) else last)
        except (KeyError, IndexError, ValueError) as e:
            raise PatchError(f"unable to remove nonexistent key: {last}") from e

    for op in ops:
        kind, path = op.get("op"), _pointer(op.get("path", ""))
        if kind == "add":
            add(path, copy.deepcopy(op.get("value")))
        elif kind == "remove":
            remove(path)
        elif kind == "replace":
            if path:
                remove(path)
            add(path, copy.deepcopy(op.get("value")))
        elif kind in ("move", "copy"):
            src = _pointer(op.get("from", ""))
            value = remove(src) if kind == "move" else copy.deepcopy(_walk(doc, src))
            add(path, value)
        elif kind == "test":
            if _walk(doc, path) != op.get("value"):
                raise PatchError(f"testing value /{'/'.join(path)} failed")
        else:
            raise PatchError(f"unexpected json patch operation {kind!r}")
    return doc


# --- strategic merge patch -------------------------------------------------------------


def strategic_merge(original: Any, patch: Any) -> Any:
    """Apply a strategic merge patch (kubectl apply, Helm 3): merges keyed lists."""
    if not isinstance(patch, dict) or not isinstance(original, dict):
        return _strip_directives(copy.deepcopy(patch))
    patch = dict(patch)
    directive = patch.pop("$patch", None)
    if directive == "delete":
        return None
    if directive == "replace":
        return _strip_directives(copy.deepcopy(patch))
    patch.pop("$retainKeys", None)
    result = copy.deepcopy(original)
    for k in [k for k in patch if k.startswith("$deleteFromPrimitiveList/")]:
        field = k.split("/", 1)[1]
        remove = patch.pop(k) or []
        if isinstance(result.get(field), list):
            result[field] = [v for v in result[field] if v not in remove]
    orders = {
        k.split("/", 1)[1]: patch.pop(k) for k in list(patch) if k.startswith("$setElementOrder/")
    }
    for k, v in patch.items():
        if v is None:
            result.pop(k, None)
        elif isinstance(v, dict) and isinstance(result.get(k), dict):
            merged = strategic_merge(result[k], v)
            if merged is None:
                result.pop(k, None)
            else:
                result[k] = merged
        elif isinstance(v, list) and isinstance(result.get(k), list):
            result[k] = _merge_list(k, result[k], v)
        elif isinstance(v, dict) and v.get("$patch") == "delete":
            result.pop(k, None)
        else:
            result[k] = _strip_directives(copy.deepcopy(v))
    for field, order in orders.items():
        key = list_key(field, result.get(field) or [])
        if key and isinstance(result.get(field), list):
            rank = {_item_id(o, key): i for i, o in enumerate(order)}
            result[field].sort(key=lambda item: rank.get(_item_id(item, key), len(rank)))
    return result


def _merge_list(field: str, original: list[Any], patch: list[Any]) -> list[Any]:
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [_strip_directives(p) for p in patch if not (isinstance(p, dict) and "$patch" in p)]
    key = list_key(field, original + patch)
    if key is None:
        return _strip_directives(copy.deepcopy(patch))
    result = copy.deepcopy(original)
    for item in patch:
        ident = _item_id(item, key)
        idx = next((i for i, o in enumerate(result) if _item_id(o, key) == ident), None)
        if isinstance(item, dict) and item.get("$patch") == "delete":
            if idx is not None:
                result.pop(idx)
        elif idx is None:
            result.append(_strip_directives(copy.deepcopy(item)))
        else:
            result[idx] = strategic_merge(result[idx], item)
    return result


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _strip_directives(v)
            for k, v in value.items()
            if not k.startswith("$") and v is not None
        }
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


# --- server-side apply -------------------------------------------------------------------

IDENTITY_FIELDS = {
    ("apiVersion",),
    ("kind",),
    ("metadata", "name"),
    ("metadata", "namespace"),
    ("metadata", "uid"),
    ("metadata", "resourceVersion"),
    ("metadata", "managedFields"),
    ("metadata", "creationTimestamp"),
    ("metadata", "generation"),
}

Path = tuple[Any, ...]


def field_paths(obj: Any, prefix: Path = ()) -> set[Path]:
    """Every field path a configuration sets; list items of keyed lists are ("k", id) segments."""
    out: set[Path] = set()
    if not isinstance(obj, dict):
        return out
    for k, v in obj.items():
        path = (*prefix, k)
        if v is None or path in IDENTITY_FIELDS or path[:1] == ("status",):
            continue
        out.add(path)
        if isinstance(v, dict):
            out |= field_paths(v, path)
        elif isinstance(v, list):
            key = list_key(k, v)
            if key:
                for item in v:
                    ipath = (
                        *path,
                        (
                            "k",
                            json.dumps(
                                dict(zip(key, _item_id(item, key) or (), strict=False)),
                                sort_keys=True,
                            ),
                        ),
                    )
                    out.add(ipath)
                    out |= field_paths(item, ipath)
    return out


def to_fields_v1(paths: set[Path]) -> dict[str, Any]:
    """Paths as a FieldsV1 tree (`{"f:spec": {"f:replicas": {}}}`, keyed items `k:{...}`)."""
    root: dict[str, Any] = {}
    for path in sorted(paths, key=lambda p: (len(p), str(p))):
        node = root
        for seg in path:
            name = (
                f"k:{json.dumps(json.loads(seg[1]), separators=(',', ':'))}"
                if isinstance(seg, tuple)
                else f"f:{seg}"
            )
            node = node.setdefault(name, {})
    _mark_dots(root, top=True)
    return root


def _mark_dots(node: dict[str, Any], top: bool = False) -> None:
    for child in node.values():
        if child:
            _mark_dots(child)
            if not top:
                child.setdefault(".", {})


def from_fields_v1(tree: dict[str, Any], prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for name, child in (tree or {}).items():
        if name == ".":
            continue
        seg: Any = (
            name[2:]
            if name.startswith("f:")
            else ("k", json.dumps(json.loads(name[2:]), sort_keys=True))
        )
        path = (*prefix, seg)
        out.add(path)
        out |= from_fields_v1(child, path)
    return out


def apply_merge(current: Any, applied: Any, field: str = "") -> Any:
    """Merge an applied configuration into the live object (maps and keyed lists merge)."""
    if isinstance(applied, dict) and isinstance(current, dict):
        result = copy.deepcopy(current)
        for k, v in applied.items():
            if v is None:
                continue
            result[k] = apply_merge(result.get(k), v, k)
        return result
    if isinstance(applied, list) and isinstance(current, list):
        key = list_key(field, applied + current)
        if key:
            merged: list[Any] = copy.deepcopy(current)
            for item in applied:
                ident = _item_id(item, key)
                idx = next((i for i, o in enumerate(merged) if _item_id(o, key) == ident), None)
                if idx is None:
                    merged.append(copy.deepcopy(item))
                else:
                    merged[idx] = apply_merge(merged[idx], item, "")
            return merged
    return copy.deepcopy(applied)


def _delete_path(obj: Any, path: Path) -> None:
    node = obj
    for seg in path[:-1]:
        node = _step(node, seg)
        if node is None:
            return
    last = path[-1]
    if isinstance(last, tuple) and isinstance(node, list):
        want = json.loads(last[1])
        node[:] = [
            i
            for i in node
            if not (isinstance(i, dict) and all(i.get(k) == v for k, v in want.items()))
        ]
    elif isinstance(node, dict):
        node.pop(last, None)


def _step(node: Any, seg: Any) -> Any:
    if isinstance(seg, tuple):
        if not isinstance(node, list):
            return None
        want = json.loads(seg[1])
        return next(
            (
                i
                for i in node
                if isinstance(i, dict) and all(i.get(k) == v for k, v in want.items())
            ),
            None,
        )
    return node.get(seg) if isinstance(node, dict) else None


def _value_at(obj: Any, path: Path) -> Any:
    node = obj
    for seg in path:
        node = _step(node, seg)
        if node is None:
            return None
    return node


def server_side_apply(
    current: dict[str, Any] | None,
    applied: dict[str, Any],
    manager: str,
    force: bool,
    now: str,
) -> dict[str, Any]:
    """The object after `manager` applies `applied`; raises ApplyConflict when not forced."""
    live = copy.deepcopy(current) if current else {}
    entries = list((live.get("metadata") or {}).get("managedFields") or [])
    mine = [e for e in entries if e.get("manager") == manager and e.get("operation") == "Apply"]
    others = [e for e in entries if e not in mine]
    prev: set[Path] = set()
    for e in mine:
        prev |= from_fields_v1(e.get("fieldsV1") or {})
    other_paths: set[Path] = set()
    for e in others:
        other_paths |= from_fields_v1(e.get("fieldsV1") or {})
    new = field_paths(applied)
    if not force and current:
        clashes = [
            p
            for p in new & other_paths
            if not isinstance(_value_at(applied, p), (dict, list))
            and _value_at(applied, p) != _value_at(current, p)
        ]
        if clashes:
            owner = next(
                e.get("manager")
                for e in others
                if from_fields_v1(e.get("fieldsV1") or {}) & set(clashes)
            )
            raise ApplyConflict(owner, [_dotted(p) for p in clashes])
    result = apply_merge(live, applied)
    for path in sorted(prev - new, key=len):
        if any(o[: len(path)] == path for o in other_paths):
            continue
        _delete_path(result, path)
    if force:
        # Forced fields change owner: drop them from the other managers' sets.
        kept = []
        for e in others:
            paths = from_fields_v1(e.get("fieldsV1") or {}) - {
                p for p in new if not _has_children(p, new)
            }
            if paths:
                kept.append({**e, "fieldsV1": to_fields_v1(paths)})
        others = kept
    meta = result.setdefault("metadata", {})
    meta["managedFields"] = [
        *others,
        {
            "manager": manager,
            "operation": "Apply",
            "apiVersion": applied.get("apiVersion", ""),
            "time": now,
            "fieldsType": "FieldsV1",
            "fieldsV1": to_fields_v1(new),
        },
    ]
    return result


def _has_children(path: Path, paths: set[Path]) -> bool:
    return any(len(p) > len(path) and p[: len(path)] == path for p in paths)


def _dotted(path: Path) -> str:
    return ".".join(f"[{p[1]}]" if isinstance(p, tuple) else str(p) for p in path)


class ApplyConflict(Exception):
    def __init__(self, manager: str, fields: list[str]):
        super().__init__(manager)
        self.manager = manager
        self.fields = fields


def _closure(leaves: set[Path]) -> set[Path]:
    return {p[:i] for p in leaves for i in range(1, len(p) + 1)}


def _leaves(paths: set[Path]) -> set[Path]:
    return {p for p in paths if not _has_children(p, paths)}


def track_update(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    manager: str,
    api_version: str,
    now: str,
) -> None:
    """Record a create/update/patch by `manager` in `new`'s managedFields (operation Update).

    The manager gains the fields this write set or changed; other managers lose them, and
    everybody loses the fields it removed, like the real server's field manager.
    """
    new_paths = field_paths(new)
    old_paths = field_paths(old) if old else set()
    changed = {
        p
        for p in _leaves(new_paths)
        if p not in old_paths or _value_at(new, p) != _value_at(old, p)
    }
    removed = old_paths - new_paths
    if old is not None and not changed and not removed:
        return
    meta = new.setdefault("metadata", {})

    def keep(paths: set[Path]) -> set[Path]:
        return _closure(
            {
                p
                for p in _leaves(paths)
                if p not in changed and not any(p[: len(r)] == r for r in removed)
            }
        )

    mine: set[Path] = set()
    entries = []
    for e in meta.get("managedFields") or []:
        paths = from_fields_v1(e.get("fieldsV1") or {})
        if (
            e.get("manager") == manager
            and e.get("operation") == "Update"
            and not e.get("subresource")
        ):
            mine |= paths
            continue
        left = keep(paths)
        if left:
            entries.append({**e, "fieldsV1": to_fields_v1(left)})
    mine = keep(mine) | _closure(changed)
    if mine:
        entries.append(
            {
                "manager": manager,
                "operation": "Update",
                "apiVersion": api_version,
                "time": now,
                "fieldsType": "FieldsV1",
                "fieldsV1": to_fields_v1(mine),
            }
        )
    if entries:
        meta["managedFields"] = entries
    else:
        meta.pop("managedFields", None)
