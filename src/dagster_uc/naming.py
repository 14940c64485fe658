"""Deployment names: pure functions from a branch (or environment) to a Kubernetes-safe name.

Rules (PRODUCT.md section 4): every run of characters other than ASCII letters and digits
becomes one ``-``, leading and trailing ``-`` are dropped, everything is lower-cased; the
project prefix is separated by ``--`` (shown as ``:`` in the Dagster UI); the result is a valid
DNS-1035 label: names longer than 63 characters are shortened deterministically with a short
hash of the full name, names starting with a digit get the prefix ``b-``.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

from dagster_uc.errors import UsageError

MAX_LABEL_LENGTH = 63
PROJECT_SEPARATOR = "--"
UI_SEPARATOR = ":"
DIGIT_PREFIX = "b-"
HASH_LENGTH = 8

_LABEL_RE = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_NON_ALNUM_RE = re.compile(r"[^A-Za-z0-9]+")


@dataclass(frozen=True)
class DeploymentName:
    """A computed deployment name and its parts.

    ``name`` is the Kubernetes / registry name, ``ui_name`` the Dagster location name,
    ``branch_part`` the value of the ``BRANCH_NAME`` build arg (sanitised branch or environment
    plus suffix, never shortened), ``project`` the project prefix inside ``name`` (or None).
    """

    name: str
    ui_name: str
    branch_part: str
    project: str | None


def sanitize(text: str) -> str:
    """Replace every run of non-alphanumeric characters by one ``-``, strip ``-``, lower-case.

    Accented letters are reduced to their base letter first (``café`` -> ``cafe``).
    """
    decomposed = unicodedata.normalize("NFKD", text)
    without_marks = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return _NON_ALNUM_RE.sub("-", without_marks).strip("-").lower()


def is_valid_label(name: str) -> bool:
    """True when ``name`` is a DNS-1035 label: at most 63 characters of ``[a-z0-9-]``,
    starting with a letter and ending with a letter or digit."""
    return len(name) <= MAX_LABEL_LENGTH and _LABEL_RE.match(name) is not None


def ui_name(name: str) -> str:
    """The Dagster UI location name: ``proj--branch`` -> ``proj:branch``."""
    return name.replace(PROJECT_SEPARATOR, UI_SEPARATOR)


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_LENGTH]


def _shorten(full: str, project: str | None) -> str:
    """Cut ``full`` to 63 characters, ending in ``-<hash of full>``; keeps ``project--``
    intact when it leaves room for at least a few characters of the branch part."""
    digest = _short_hash(full)
    room = MAX_LABEL_LENGTH - len(digest) - 1
    if project is not None:
        prefix = project + PROJECT_SEPARATOR
        branch = full[len(prefix) :]
        branch_room = room - len(prefix)
        if branch_room >= 4:
            kept = branch[:branch_room].rstrip("-")
            return f"{prefix}{kept}-{digest}" if kept else f"{prefix}{digest}"
    return f"{full[:room].rstrip('-')}-{digest}"


def compute_deployment_name(
    *,
    branch: str,
    cicd: bool,
    environment: str,
    suffix: str | None = None,
    project: str | None = None,
    explicit_name: str | None = None,
) -> DeploymentName:
    """Compute the deployment name for a branch (or the environment when ``cicd``).

    ``explicit_name`` (``--deployment-name``) replaces the computed name entirely; it must
    already be a valid name (see :func:`name_from_user_input`) and cannot be combined with a
    suffix. ``branch_part`` is still computed from the branch (or environment).
    """
    source = environment if cicd else branch
    source_label = f"environment '{environment}'" if cicd else f"branch '{branch}'"
    branch_part = sanitize(source)
    if not branch_part:
        raise UsageError(
            f"The {source_label} has no letters or digits to build a deployment name from; "
            "pass a name with --deployment-name."
        )
    if suffix:
        clean_suffix = sanitize(suffix)
        if not clean_suffix:
            raise UsageError(
                f"The deployment name suffix '{suffix}' has no letters or digits; "
                "use letters, digits and '-'."
            )
        branch_part = f"{branch_part}-{clean_suffix}"

    if explicit_name is not None:
        if suffix:
            raise UsageError(
                "--deployment-name replaces the whole name; do not combine it with "
                "--deployment-name-suffix."
            )
        name = name_from_user_input(explicit_name)
        head, sep, _ = name.partition(PROJECT_SEPARATOR)
        return DeploymentName(
            name=name, ui_name=ui_name(name), branch_part=branch_part, project=head if sep else None
        )

    clean_project: str | None = None
    if project is not None:
        clean_project = sanitize(project)
        if not clean_project:
            raise UsageError(
                f"The project name '{project}' has no letters or digits; fix [project].name in "
                "pyproject.toml or set use_project_name: false."
            )

    full = f"{clean_project}{PROJECT_SEPARATOR}{branch_part}" if clean_project else branch_part
    if full[0].isdigit():
        full = DIGIT_PREFIX + full
        if clean_project:
            clean_project = DIGIT_PREFIX + clean_project
    name = full if len(full) <= MAX_LABEL_LENGTH else _shorten(full, clean_project)
    head, sep, _ = name.partition(PROJECT_SEPARATOR)
    return DeploymentName(
        name=name,
        ui_name=ui_name(name),
        branch_part=branch_part,
        project=head if (clean_project and sep) else None,
    )


def name_from_user_input(text: str) -> str:
    """Turn a name typed by a user (UI form ``proj:branch`` or internal ``proj--branch``) into
    the internal name; invalid names are rejected with a suggestion, never silently changed."""
    stripped = text.strip()
    name = stripped.replace(UI_SEPARATOR, PROJECT_SEPARATOR)
    if is_valid_label(name):
        return name
    parts = [sanitize(part) for part in stripped.split(UI_SEPARATOR)]
    suggestion = PROJECT_SEPARATOR.join(part for part in parts if part)
    if suggestion and suggestion[0].isdigit():
        suggestion = DIGIT_PREFIX + suggestion
    hint = (
        f"; did you mean '{suggestion}'?"
        if suggestion and is_valid_label(suggestion)
        else "; use lower-case letters, digits and '-', starting with a letter, at most 63 characters."
    )
    raise UsageError(
        f"'{text}' is not a valid deployment name (a DNS-1035 label: lower-case letters, "
        f"digits and '-', starting with a letter, at most 63 characters){hint}"
    )


def image_repository(container_registry: str, image_prefix: str, name: str) -> str:
    """``<registry>/<prefix>/<name>``, without the prefix segment when the prefix is empty."""
    parts = [container_registry.rstrip("/"), image_prefix.strip("/"), name]
    return "/".join(part for part in parts if part)
