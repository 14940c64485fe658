"""`yamldoc`: the same text and the same objects as PyYAML's safe dump and load (pure)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from dagster_uc import yamldoc

#: What dagster-uc wrote with before (libyaml's emitter when PyYAML has it).
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.text(max_size=12),
    # Strings that PyYAML would read back as something else unless quoted.
    st.sampled_from(
        [
            "yes",
            "No",
            "on",
            "OFF",
            "~",
            "null",
            "",
            "0",
            "007",
            "0x1f",
            "1e3",
            "1_000",
            "-1",
            "2026-12-03",
            "2026-12-03T17:00:00Z",
            ".inf",
            "<<",
            "a: b",
            "- x",
            "#c",
            "'q'",
            '"d"',
            "multi\nline",
            " lead",
            "trail ",
            "ünïcode",
            "\t",
        ]
    ),
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.one_of(st.text(max_size=8), st.integers(), st.booleans()), inner, max_size=4
        ),
    ),
    max_leaves=25,
)


@settings(max_examples=300)
@given(DOCUMENTS)
def test_dump_writes_what_pyyaml_writes(document: Any) -> None:
    expected = yaml.dump(document, Dumper=DUMPER, sort_keys=False, default_flow_style=False)
    assert yamldoc.dump(document) == expected


@settings(max_examples=300)
@given(DOCUMENTS)
def test_load_reads_what_safe_load_reads(document: Any) -> None:
    for text in (
        yaml.safe_dump(document, sort_keys=False),
        yaml.safe_dump(document, default_flow_style=True),
    ):
        assert yamldoc.load(text) == yaml.safe_load(text)


@pytest.mark.parametrize(
    "text",
    [
        "a: 0o17\nb: 0x1f\nc: 1_000\nd: -3\ne: +4\nf: 1.5\ng: .nan\n",
        "when: 2026-12-03\nat: 2026-12-03T17:00:00Z\n",
        "base: &b {x: 1}\nderived:\n  <<: *b\n  y: 2\n",
        "set: !!set {a, b}\nbinary: !!binary aGVsbG8=\n",
        "? [a, b]\n: complex key\n",
        "",
        "# only a comment\n",
        "[1, 2, 3]",
    ],
)
def test_what_the_fast_walk_leaves_to_pyyaml_still_reads_the_same(text: str) -> None:
    try:
        expected = yaml.safe_load(text)
    except yaml.YAMLError as error:
        with pytest.raises(type(error)):
            yamldoc.load(text)
        return
    got = yamldoc.load(text)
    if isinstance(expected, float) or (
        isinstance(expected, dict)
        and any(v != v for v in expected.values() if isinstance(v, float))
    ):
        assert repr(got) == repr(expected)
    else:
        assert got == expected


def test_invalid_yaml_raises_pyyamls_error() -> None:
    with pytest.raises(yaml.YAMLError):
        yamldoc.load("a: [1, 2\n")
    with pytest.raises(yaml.YAMLError):
        yamldoc.load("a: 1\n---\nb: 2\n")


def test_other_objects_are_dumped_by_pyyaml() -> None:
    document = {"at": dt.date(2026, 12, 3), "ratio": 0.5, "pair": (1, 2)}
    assert yamldoc.dump({"at": dt.date(2026, 12, 3), "ratio": 0.5}) == yaml.dump(
        {"at": dt.date(2026, 12, 3), "ratio": 0.5},
        Dumper=DUMPER,
        sort_keys=False,
        default_flow_style=False,
    )
    assert yamldoc.load(yamldoc.dump(document)) == {**document, "pair": [1, 2]}
