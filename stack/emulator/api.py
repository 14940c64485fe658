"""The API server's semantics on top of the store: create/update/patch/delete with metadata,
defaulting, validation, optimistic concurrency, owner-reference and namespace cascade."""

from __future__ import annotations

import base64
import copy
import json
import re
import secrets
import uuid
from typing import Any

import yaml

from . import patches
from .resources import BY_PATH, RESOURCES, Resource
from .selectors import fields_match, labels_match, selector_from_match
from .store import (
    ApiError,
    Store,
    already_exists,
    bad_request,
    conflict,
    invalid,
    not_found,
    now,
)

NS = BY_PATH[("", "v1", "namespaces")]
SERVICE_ACCOUNTS = BY_PATH[("", "v1", "serviceaccounts")]
GENERATION_GROUPS = {"apps", "batch", "networking.k8s.io", "policy", "autoscaling"}
SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
DNS_LABEL_KINDS = {"namespaces", "services"}
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
MAX_CONFIG_BYTES = 1024 * 1024


def _pod_template_defaults(spec: dict[str, Any]) -> None:
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        image = str(c.get("image", ""))
        tag = image.rsplit("/", 1)[-1]
        latest = "@" not in tag and (":" not in tag or tag.endswith(":latest"))
        c.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
        c.setdefault("terminationMessagePath", "/dev/termination-log")
        c.setdefault("terminationMessagePolicy", "File")
        c.setdefault("resources", {})
        for p in c.get("ports") or []:
            p.setdefault("protocol", "TCP")


def _pod_admission_defaults(spec: dict[str, Any]) -> None:
    """What the real server adds to Pods only (SetDefaults_Pod and the admission plugins)."""
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("serviceAccountName", "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    tolerations = spec.setdefault("tolerations", [])
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(t.get("key") == key for t in tolerations):
            tolerations.append(
                {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            )


class Api:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._ip = 0
        self._cluster_ip = 0

    # --- reads ---------------------------------------------------------------------------

    def get(self, res: Resource, ns: str, name: str) -> dict[str, Any]:
        obj = self.store.get(res, ns if res.namespaced else "", name)
        if obj is None:
            raise not_found(res, name)
        return obj

    def list(
        self,
        res: Resource,
        ns: str | None,
        label_reqs: list[Any] | None = None,
        field_reqs: list[Any] | None = None,
    ) -> list[dict[str, Any]]:
        return self.store.list(
            res,
            ns if res.namespaced else None,
            lambda o: (
                labels_match(label_reqs or [], o["metadata"].get("labels"))
                and fields_match(field_reqs or [], o)
            ),
        )

    # --- writes --------------------------------------------------------------------------

    def create(
        self,
        res: Resource,
        ns: str | None,
        obj: dict[str, Any],
        *,
        dry_run: bool = False,
        field_manager: str | None = None,
    ) -> dict[str, Any]:
        obj = drop_nulls(obj)
        self._check_type(res, obj)
        meta = obj.setdefault("metadata", {})
        if res.namespaced:
            ns = ns or meta.get("namespace") or "default"
            if meta.get("namespace") and meta["namespace"] != ns:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = ns
            if self.store.get(NS, "", ns) is None:
                raise not_found(NS, ns)
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + _suffix()
        name = meta.get("name", "")
        if not name:
            raise invalid(
                res, "", [("metadata.name", "Required value: name or generateName is required")]
            )
        for k in ("resourceVersion", "deletionTimestamp", "selfLink"):
            meta.pop(k, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now()
        if res.group in GENERATION_GROUPS:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        self._defaults(res, obj, None)
        self._validate(res, obj, None)
        if res.plural == "pods":
            self._admit_service_account(obj)
        if field_manager:
            patches.track_update(None, obj, field_manager, res.group_version, now())
        with self.store.lock:
            if self.store.get(res, meta.get("namespace", ""), name) is not None:
                raise already_exists(res, name)
            if dry_run:
                return obj
            written = self.store.write(res, obj)
        if res is NS and not dry_run:
            self._create_default_service_account(name)
        return written

    def _admit_service_account(self, pod: dict[str, Any]) -> None:
        """The ServiceAccount admission plugin: a pod's account must exist."""
        meta = pod["metadata"]
        account = pod["spec"].get("serviceAccountName") or "default"
        if self.store.get(SERVICE_ACCOUNTS, meta["namespace"], account) is None:
            raise ApiError(
                403,
                "Forbidden",
                f'pods "{meta.get("name") or meta.get("generateName", "")}" is forbidden: '
                f"error looking up service account {meta['namespace']}/{account}: "
                f'serviceaccount "{account}" not found',
                {"name": meta.get("name", ""), "kind": "pods"},
            )

    def _create_default_service_account(self, namespace: str) -> None:
        """What the serviceaccount controller does for every new namespace."""
        if self.store.get(SERVICE_ACCOUNTS, namespace, "default") is None:
            self.create(
                SERVICE_ACCOUNTS,
                namespace,
                {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}},
            )

    def update(
        self,
        res: Resource,
        ns: str | None,
        name: str,
        obj: dict[str, Any],
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        field_manager: str | None = None,
    ) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        self._check_type(res, obj)
        meta = obj.setdefault("metadata", {})
        if meta.get("name") and meta["name"] != name:
            raise bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
            )
        with self.store.lock:
            old = self.get(res, ns or "", name)
            sent_rv = meta.get("resourceVersion")
            if sent_rv and sent_rv != old["metadata"]["resourceVersion"]:
                raise conflict(res, name)
            return self._replace(
                res, old, obj, subresource=subresource, dry_run=dry_run, manager=field_manager
            )

    def _replace(
        self,
        res: Resource,
        old: dict[str, Any],
        obj: dict[str, Any],
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        manager: str | None = None,
    ) -> dict[str, Any]:
        """Write `obj` over `old` (same identity); keeps server-owned metadata. A `manager`
        (non-apply writes) is recorded in managedFields."""
        if subresource == "status":
            new = copy.deepcopy(old)
            if "status" in obj:
                new["status"] = obj["status"]
        else:
            new = drop_nulls(obj)
            new["apiVersion"], new["kind"] = res.group_version, res.kind
            if res.has_status:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
        meta, old_meta = new.setdefault("metadata", {}), old["metadata"]
        for k in ("name", "namespace", "uid", "creationTimestamp"):
            if k in old_meta:
                meta[k] = old_meta[k]
        if "managedFields" not in meta and "managedFields" in old_meta:
            meta["managedFields"] = old_meta["managedFields"]
        meta["resourceVersion"] = old_meta["resourceVersion"]
        self._defaults(res, new, old)
        self._validate(res, new, old)
        if "generation" in old_meta:
            meta["generation"] = old_meta["generation"] + (1 if _spec(new) != _spec(old) else 0)
        if manager and subresource is None:
            patches.track_update(old, new, manager, res.group_version, now())
        if _without_times(new) == _without_times(old) or dry_run:
            return old if not dry_run else new
        return self.store.write(res, new)

    def patch(
        self,
        res: Resource,
        ns: str | None,
        name: str,
        content_type: str,
        body: bytes,
        *,
        subresource: str | None = None,
        field_manager: str | None = None,
        force: bool = False,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        ctype = content_type.split(";")[0].strip()
        try:
            if ctype == "application/apply-patch+yaml":
                text = body.decode()
                try:
                    doc = json.loads(text)
                except ValueError:
                    doc = yaml.safe_load(text)
            else:
                doc = json.loads(body or b"null")
        except (ValueError, yaml.YAMLError) as e:
            raise bad_request(f"error decoding patch: {e}") from e
        if ctype == "application/apply-patch+yaml":
            return self.apply(res, ns, name, doc, field_manager, force, subresource, dry_run)
        with self.store.lock:
            old = self.get(res, ns or "", name)
            patched = self.patched(old, ctype, doc)
            rv = (patched.get("metadata") or {}).get("resourceVersion")
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise conflict(res, name)
            return self._replace(
                res, old, patched, subresource=subresource, dry_run=dry_run, manager=field_manager
            )

    @staticmethod
    def patched(old: dict[str, Any], content_type: str, doc: Any) -> dict[str, Any]:
        """`old` with a merge, JSON or strategic merge patch applied (`doc` parsed or bytes)."""
        ctype = content_type.split(";")[0].strip()
        if isinstance(doc, bytes):
            try:
                doc = json.loads(doc or b"null")
            except ValueError as e:
                raise bad_request(f"error decoding patch: {e}") from e
        try:
            if ctype == "application/merge-patch+json":
                if not isinstance(doc, dict):
                    raise patches.PatchError("merge patch must be a JSON object")
                patched = patches.merge_patch(old, doc)
            elif ctype == "application/json-patch+json":
                patched = patches.json_patch(old, doc)
            elif ctype == "application/strategic-merge-patch+json":
                if not isinstance(doc, dict):
                    raise patches.PatchError("strategic merge patch must be a JSON object")
                patched = patches.strategic_merge(old, doc)
            else:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    f'the server does not support patch content type "{ctype}"',
                )
        except patches.PatchError as e:
            raise ApiError(422, "Invalid", str(e)) from e
        if not isinstance(patched, dict):
            raise ApiError(422, "Invalid", "patch produced an invalid object")
        return patched

    def apply(
        self,
        res: Resource,
        ns: str | None,
        name: str,
        doc: Any,
        field_manager: str | None,
        force: bool,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        if not field_manager:
            raise bad_request("PATCH, fieldManager is required for apply requests")
        if not isinstance(doc, dict):
            raise bad_request("apply patch must be an object")
        self._check_type(res, doc)
        meta = doc.get("metadata") or {}
        if meta.get("name") and meta["name"] != name:
            raise bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
            )
        with self.store.lock:
            old = self.store.get(res, (ns or "") if res.namespaced else "", name)
            try:
                result = patches.server_side_apply(old, doc, field_manager, force, now())
            except patches.ApplyConflict as e:
                raise ApiError(
                    409,
                    "Conflict",
                    f'Apply failed with 1 conflict: conflict with "{e.manager}": {", ".join(e.fields)}',
                    {
                        "causes": [
                            {
                                "reason": "FieldManagerConflict",
                                "message": f'conflict with "{e.manager}"',
                                "field": f,
                            }
                            for f in e.fields
                        ]
                    },
                ) from e
            if old is None:
                result.setdefault("metadata", {})["name"] = name
                return self.create(res, ns, result, dry_run=dry_run)
            return self._replace(res, old, result, subresource=subresource, dry_run=dry_run)

    def delete(
        self,
        res: Resource,
        ns: str | None,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        options = options or {}
        with self.store.lock:
            old = self.get(res, ns or "", name)
            pre = options.get("preconditions") or {}
            if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
                raise conflict(
                    res,
                    name,
                    f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {old['metadata']['uid']}",
                )
            if (
                pre.get("resourceVersion")
                and pre["resourceVersion"] != old["metadata"]["resourceVersion"]
            ):
                raise conflict(
                    res,
                    name,
                    f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, ResourceVersion in meta: {old['metadata']['resourceVersion']}",
                )
            if dry_run:
                return old
            policy = options.get("propagationPolicy") or (
                "Orphan" if options.get("orphanDependents") else "Background"
            )
            self._delete_tree(res, old, policy)
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {
                "name": name,
                **({"group": res.group} if res.group else {}),
                "kind": res.plural,
                "uid": old["metadata"]["uid"],
            },
        }

    def _delete_tree(self, res: Resource, obj: dict[str, Any], policy: str) -> None:
        meta = obj["metadata"]
        if res is NS:
            for r in RESOURCES:
                if r.namespaced:
                    for child in self.store.list(r, meta["name"]):
                        self.store.remove(r, meta["name"], child["metadata"]["name"])
        uid = meta["uid"]
        for r in RESOURCES:
            scope = meta.get("namespace") if r.namespaced and res.namespaced else None
            if res.namespaced and not r.namespaced:
                continue
            for child in self.store.list(r, scope, lambda o: _owned_by(o, uid)):
                refs = child["metadata"].get("ownerReferences") or []
                if policy == "Orphan":
                    child["metadata"]["ownerReferences"] = [x for x in refs if x.get("uid") != uid]
                    if not child["metadata"]["ownerReferences"]:
                        del child["metadata"]["ownerReferences"]
                    self.store.write(r, child)
                else:
                    self._delete_tree(r, child, "Background")
        self.store.remove(res, meta.get("namespace", ""), meta["name"])

    # --- defaulting and validation --------------------------------------------------------

    def _check_type(self, res: Resource, obj: dict[str, Any]) -> None:
        if not isinstance(obj, dict):
            raise bad_request("the request body must be a JSON object")
        kind, api_version = obj.get("kind"), obj.get("apiVersion")
        if kind and kind != res.kind:
            raise bad_request(
                f"the kind in the data ({kind}) does not match the expected kind ({res.kind})"
            )
        if api_version and api_version != res.group_version:
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version ({res.group_version})"
            )
        obj["kind"], obj["apiVersion"] = res.kind, res.group_version
        if not isinstance(obj.get("metadata", {}), dict):
            raise bad_request("metadata must be an object")

    def _defaults(self, res: Resource, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        p = res.plural
        meta = obj["metadata"]
        if p == "namespaces":
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj["status"] = (old or {}).get("status") or {"phase": "Active"}
        elif p == "secrets":
            obj.setdefault("type", "Opaque")
            string_data = obj.pop("stringData", None) or {}
            if string_data:
                data = obj.setdefault("data", {})
                for k, v in string_data.items():
                    data[k] = base64.b64encode(str(v).encode()).decode()
        elif p == "services":
            spec = obj.setdefault("spec", {})
            spec.setdefault("type", "ClusterIP")
            spec.setdefault("sessionAffinity", "None")
            if spec["type"] != "ExternalName":
                old_ip = ((old or {}).get("spec") or {}).get("clusterIP")
                if not spec.get("clusterIP"):
                    spec["clusterIP"] = old_ip or self._next_cluster_ip()
                if spec["clusterIP"] != "None":
                    spec["clusterIPs"] = [spec["clusterIP"]]
                spec.setdefault("ipFamilies", ["IPv4"])
                spec.setdefault("ipFamilyPolicy", "SingleStack")
                spec.setdefault("internalTrafficPolicy", "Cluster")
            for port in spec.get("ports") or []:
                port.setdefault("protocol", "TCP")
                port.setdefault("targetPort", port.get("port"))
            lb = (
                {"ingress": [{"ip": "172.18.255.200", "ipMode": "VIP"}]}
                if spec["type"] == "LoadBalancer"
                else {}
            )
            obj.setdefault("status", {"loadBalancer": lb})
        elif p == "pods":
            _pod_template_defaults(obj.setdefault("spec", {}))
            if old is None:
                _pod_admission_defaults(obj["spec"])
                obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
        elif p in ("deployments", "replicasets", "statefulsets", "daemonsets"):
            spec = obj.setdefault("spec", {})
            if p != "daemonsets":
                spec.setdefault("replicas", 1)
            spec.setdefault("revisionHistoryLimit", 10)
            if p == "deployments":
                spec.setdefault("progressDeadlineSeconds", 600)
                strategy = spec.setdefault("strategy", {"type": "RollingUpdate"})
                if strategy.get("type", "RollingUpdate") == "RollingUpdate":
                    strategy["type"] = "RollingUpdate"
                    ru = strategy.setdefault("rollingUpdate", {})
                    ru.setdefault("maxSurge", "25%")
                    ru.setdefault("maxUnavailable", "25%")
            template = spec.setdefault("template", {})
            template.setdefault("metadata", {})
            _pod_template_defaults(template.setdefault("spec", {}))
            if old is None:
                obj.setdefault("status", {})
        elif p == "jobs":
            spec = obj.setdefault("spec", {})
            spec.setdefault("completions", 1)
            spec.setdefault("parallelism", 1)
            spec.setdefault("backoffLimit", 6)
            spec.setdefault("completionMode", "NonIndexed")
            spec.setdefault("suspend", False)
            spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
            template = spec.setdefault("template", {})
            template.setdefault("metadata", {})
            if old is None and not spec.get("manualSelector"):
                uid, job_name = meta["uid"], meta["name"]
                spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
                template["metadata"]["labels"] = {
                    **(template["metadata"].get("labels") or {}),
                    "batch.kubernetes.io/controller-uid": uid,
                    "batch.kubernetes.io/job-name": job_name,
                    "controller-uid": uid,
                    "job-name": job_name,
                }
            if not meta.get("labels"):
                meta["labels"] = dict(template["metadata"].get("labels") or {})
            _pod_template_defaults(template.setdefault("spec", {}))
            if old is None:
                obj.setdefault("status", {})
        elif p == "cronjobs":
            spec = obj.setdefault("spec", {})
            spec.setdefault("concurrencyPolicy", "Allow")
            spec.setdefault("failedJobsHistoryLimit", 1)
            spec.setdefault("successfulJobsHistoryLimit", 3)
            spec.setdefault("suspend", False)
            job_template = spec.setdefault("jobTemplate", {}).setdefault("spec", {})
            _pod_template_defaults(job_template.setdefault("template", {}).setdefault("spec", {}))
        elif p == "horizontalpodautoscalers":
            spec = obj.setdefault("spec", {})
            spec.setdefault("minReplicas", 1)
            if not spec.get("metrics"):
                spec["metrics"] = [
                    {
                        "type": "Resource",
                        "resource": {
                            "name": "cpu",
                            "target": {"type": "Utilization", "averageUtilization": 80},
                        },
                    }
                ]
        elif p == "persistentvolumeclaims":
            obj["status"] = {
                "phase": "Bound",
                "accessModes": (obj.get("spec") or {}).get("accessModes", []),
            }

    def _validate(self, res: Resource, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        meta = obj["metadata"]
        name = meta["name"]
        causes: list[tuple[str, str]] = []
        if res.plural in DNS_LABEL_KINDS:
            if len(name) > 63 or not LABEL.match(name):
                msg = LABEL_MSG if len(name) <= 63 else "must be no more than 63 characters"
                causes.append(("metadata.name", f'Invalid value: "{name}": {msg}'))
        elif len(name) > 253 or not SUBDOMAIN.match(name):
            msg = SUBDOMAIN_MSG if len(name) <= 253 else "must be no more than 253 characters"
            causes.append(("metadata.name", f'Invalid value: "{name}": {msg}'))
        for k, v in (meta.get("labels") or {}).items():
            if not isinstance(v, str) or len(v) > 63 or not LABEL_VALUE.match(v):
                causes.append(
                    (
                        "metadata.labels",
                        f"Invalid value: \"{v}\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
                    )
                )
            if len(k.rsplit("/", 1)[-1]) > 63 or not QUALIFIED_NAME.match(k.rsplit("/", 1)[-1]):
                causes.append(
                    (
                        "metadata.labels",
                        f"Invalid value: \"{k}\": name part must consist of alphanumeric characters, '-', '_' or '.'",
                    )
                )
        for v in (meta.get("annotations") or {}).values():
            if not isinstance(v, str):
                raise bad_request(
                    f"json: cannot unmarshal {type(v).__name__} into Go struct field ObjectMeta.metadata.annotations of type string"
                )
        if res.plural in ("configmaps", "secrets"):
            size = 0
            for section in ("data", "binaryData"):
                for k, v in (obj.get(section) or {}).items():
                    if not CONFIG_KEY.match(k):
                        causes.append(
                            (
                                f"{section}[{k}]",
                                f"Invalid value: \"{k}\": a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
                            )
                        )
                    encoded = section == "binaryData" or res.plural == "secrets"
                    size += len(k) + (len(str(v)) * 3 // 4 if encoded else len(str(v).encode()))
            if size > MAX_CONFIG_BYTES:
                causes.append(("[]", f"Too long: must have at most {MAX_CONFIG_BYTES} bytes"))
            if (old or {}).get("immutable") and any(
                obj.get(s) != (old or {}).get(s) for s in ("data", "binaryData", "immutable")
            ):
                causes.append(("data", "Forbidden: field is immutable when `immutable` is set"))
        if res.plural in ("deployments", "replicasets", "statefulsets", "daemonsets"):
            spec = obj.get("spec") or {}
            selector = spec.get("selector")
            tpl_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
            if not selector:
                causes.append(("spec.selector", "Required value"))
            elif not labels_match(selector_from_match(selector), tpl_labels):
                causes.append(
                    (
                        "spec.template.metadata.labels",
                        f"Invalid value: {json.dumps(tpl_labels)}: `selector` does not match template `labels`",
                    )
                )
            if old is not None and selector != (old.get("spec") or {}).get("selector"):
                causes.append(
                    ("spec.selector", f"Invalid value: {json.dumps(selector)}: field is immutable")
                )
            if not (spec.get("template") or {}).get("spec", {}).get("containers"):
                causes.append(("spec.template.spec.containers", "Required value"))
        if res.plural == "pods" and not (obj.get("spec") or {}).get("containers"):
            causes.append(("spec.containers", "Required value"))
        pod_spec = obj.get("spec") or {}
        if "template" in pod_spec:
            pod_spec = (pod_spec.get("template") or {}).get("spec") or {}
        for c in (pod_spec.get("containers") or []) + (pod_spec.get("initContainers") or []):
            for field, value in [("name", c.get("name"))] + [
                ("env.name", e.get("name")) for e in c.get("env") or []
            ]:
                if not isinstance(value, str):
                    raise bad_request(
                        f"json: cannot unmarshal {type(value).__name__} into Go struct field "
                        f"Container.{field} of type string"
                    )
        if causes:
            raise invalid(res, name, causes)

    def _next_cluster_ip(self) -> str:
        self._cluster_ip += 1
        n = self._cluster_ip + 10
        return f"10.96.{n // 250}.{n % 250 + 1}"

    def next_pod_ip(self) -> str:
        self._ip += 1
        return f"10.244.{self._ip // 250}.{self._ip % 250 + 2}"


def _owned_by(obj: dict[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj["metadata"].get("ownerReferences") or [])


def drop_nulls(value: Any) -> Any:
    """A copy without null map values: the real server decodes them to nil/zero fields and
    omits those (`creationTimestamp: null` from Go clients, `replicas: null` in a manifest)."""
    if isinstance(value, dict):
        return {k: drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_nulls(v) for v in value]
    return value


def _without_times(obj: dict[str, Any]) -> dict[str, Any]:
    """The object minus managedFields timestamps: a no-op apply must not bump resourceVersion."""
    out = dict(obj)
    meta = dict(out.get("metadata") or {})
    if "managedFields" in meta:
        meta["managedFields"] = [{**e, "time": None} for e in meta["managedFields"]]
    out["metadata"] = meta
    return out


def _spec(obj: dict[str, Any]) -> Any:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status", "apiVersion", "kind")}


def _suffix(n: int = 5) -> str:
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return "".join(secrets.choice(alphabet) for _ in range(n))
