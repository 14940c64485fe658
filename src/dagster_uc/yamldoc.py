"""YAML for the plain documents dagster-uc reads and writes on every command (the values
document of every location, the workspace): libyaml parses and emits, and the walk between
nodes and Python objects is ours.

PyYAML's own representer and constructor are generic (alias bookkeeping, a method lookup
through the type's MRO per object) and cost most of the time on a values document of a few
hundred locations: about 0.15 s to read and 0.25 s to write 200 locations, on a path whose cost
should not grow with the team's activity. Plain data (mappings, sequences, strings, numbers,
booleans, null) takes the fast walk and comes out exactly as `yaml.dump`/`yaml.safe_load` give
it; any other tag, anchor or merge key falls back to PyYAML's own constructor for that node.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

STR = "tag:yaml.org,2002:str"
INT = "tag:yaml.org,2002:int"
FLOAT = "tag:yaml.org,2002:float"
BOOL = "tag:yaml.org,2002:bool"
NULL = "tag:yaml.org,2002:null"
MAP = "tag:yaml.org,2002:map"
SEQ = "tag:yaml.org,2002:seq"
MERGE = "tag:yaml.org,2002:merge"

_BOOLS = {"yes": True, "no": False, "true": True, "false": False, "on": True, "off": False}


class _Fallback(Exception):
    """A node the fast walk leaves to PyYAML's constructor."""


def load(text: str) -> Any:
    """`yaml.safe_load(text)`, faster on large plain documents."""
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        try:
            return _construct(node)
        except _Fallback:
            return loader.construct_document(node)
    finally:
        loader.dispose()


def _construct(node: Node) -> Any:
    if isinstance(node, ScalarNode):
        tag, value = node.tag, node.value
        if tag == STR:
            return value
        if tag == NULL:
            return None
        if tag == BOOL:
            return _BOOLS[value.lower()]
        if tag == INT and value.isdigit() and (value == "0" or value[0] != "0"):
            return int(value)
        raise _Fallback
    if isinstance(node, SequenceNode):
        if node.tag != SEQ:
            raise _Fallback
        return [_construct(item) for item in node.value]
    if isinstance(node, MappingNode):
        if node.tag != MAP:
            raise _Fallback
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == MERGE:
                raise _Fallback
            key = _construct(key_node)
            if isinstance(key, (list, dict)):
                raise _Fallback
            result[key] = _construct(value_node)
        return result
    raise _Fallback


def dump(document: Any, *, sort_keys: bool = False) -> str:
    """`yaml.safe_dump(document, sort_keys=sort_keys, default_flow_style=False)`, faster."""
    try:
        if not isinstance(document, (dict, list)):
            raise _Fallback
        node = _represent(document, sort_keys)
    except _Fallback:
        return str(
            yaml.dump(document, Dumper=_DUMPER, sort_keys=sort_keys, default_flow_style=False)
        )
    return str(yaml.serialize(node, Dumper=_DUMPER))


def _represent(data: Any, sort_keys: bool) -> Node:
    kind = type(data)
    if kind is str:
        return ScalarNode(STR, data)
    if kind is dict:
        items = sorted(data.items()) if sort_keys else data.items()
        return MappingNode(
            MAP,
            [(_represent(k, sort_keys), _represent(v, sort_keys)) for k, v in items],
            flow_style=False,
        )
    if kind is list:
        return SequenceNode(SEQ, [_represent(v, sort_keys) for v in data], flow_style=False)
    if kind is bool:
        return ScalarNode(BOOL, "true" if data else "false")
    if kind is int:
        return ScalarNode(INT, str(data))
    if data is None:
        return ScalarNode(NULL, "null")
    raise _Fallback
