"""One MLflow registered model per dataset (`sdhrnet-{dataset}`), with `champion` / `challenger` aliases.

How a version is stored: the job's files are logged with `mlflow.onnx.log_model` as a LoggedModel of the
job's own MLflow run (ONNX at the model root as `model.onnx`; weights.pt, spec.json, config.json,
model_card.json and face_scores.json as the flavour's extra files), with explicit pip requirements (inferring
them loads the model in a subprocess and costs seconds), then registered with `create_model_version`. The
version therefore is a real MLflow model (pyfunc-loadable, `mlflow models serve` works) and the API downloads
one plain ONNX file.

Idempotency: every version carries the tag `job_id`; registering a job id that already has a version
returns that version (a job redelivered after a worker crash must never register twice).
"""
import json
import logging
import math
import re
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version as package_version
from pathlib import Path
from typing import Any

from landmarks.datasets import NAME_PATTERN
from landmarks.selection import FACE_SCORES, SelectionError, choose_among, read_face_scores
from sdhrnet.budgets import BUDGET_KINDS, over_budget
from sdhrnet.settings import get_settings

from . import history
from .cache import fetch_version
from .policy import decide, resolve_policy
from .served import ServedModel
from .tracking import client as tracking_client, connect, ensure_experiment, is_server_uri, mlflow

log = logging.getLogger("sdhrnet.registry")

MODEL_PREFIX = "sdhrnet-"
CHAMPION, CHALLENGER = "champion", "challenger"
REGISTRY_EXPERIMENT = "sdhrnet-registry"  # runs made for models that come without one (the bundled default)
DEFAULT_JOB_ID = "bundled-default"
EXTRA_FILES = ("weights.pt", "spec.json", "config.json", "model_card.json", FACE_SCORES)
DECISION_TAG = "promotion"  # set once the policy has been applied: a redelivered job does not decide twice
SERVING_REQUIREMENTS = ("onnxruntime", "onnx", "numpy")
_DATASET_RE = re.compile(NAME_PATTERN)


class RegistryError(ValueError):
    """A request the registry cannot satisfy as asked; the message says what to do instead."""


class ModelNotFound(LookupError):
    """No such registered model or version (the API answers 404)."""


class RegistryConflict(RegistryError):
    """The request is well formed but what is registered does not allow it (the API answers 409)."""


class NothingWithinBudget(RegistryConflict):
    """No registered version records costs within the budget asked for."""


def model_name(dataset: str) -> str:
    dataset = str(dataset).strip().lower()
    if not _DATASET_RE.match(dataset):
        raise RegistryError(f"dataset '{dataset}' is not a valid name; use lower-case letters, digits, '-' or '_' "
                            "(e.g. 300w, wflw, cofw)")
    return MODEL_PREFIX + dataset


def pip_requirements() -> list[str]:
    """Pinned to this environment: serving the ONNX flavour needs only these (MLflow adds itself)."""
    pins = []
    for package in SERVING_REQUIREMENTS:
        try:
            pins.append(f"{package}=={package_version(package)}")
        except PackageNotFoundError:
            pins.append(package)
    return pins


def _field(obj: Any, name: str, default=None):
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _float(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _int(value) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _version_metrics(tags: dict) -> dict:
    return {"nme": _float(tags.get("nme")), "fr": _float(tags.get("fr")), "auc": _float(tags.get("auc")),
            "split": tags.get("eval_split") or None}


@dataclass
class _Candidate:
    """What register_result needs from a JobResult (or from a bundled model folder)."""
    dataset: str
    num_landmarks: int
    input_size: int
    metrics: dict
    model_dir: Path
    run_id: str | None
    params: int | None
    macs: int | None
    card: dict

    @classmethod
    def from_result(cls, result) -> "_Candidate":
        model_dir = Path(_field(result, "model_dir"))
        card = _read_json(model_dir / "model_card.json")
        dataset = _field(result, "dataset") or card.get("dataset")
        if not dataset:
            raise RegistryError(f"no dataset given for the model in {model_dir}; set result.dataset or 'dataset' in "
                                "model_card.json")
        metrics = dict(_field(result, "metrics") or card.get("metrics") or {})
        return cls(dataset=str(dataset).lower(),
                   num_landmarks=int(_field(result, "num_landmarks") or card.get("num_landmarks")),
                   input_size=int(_field(result, "input_size") or card.get("input_size")),
                   metrics=metrics, model_dir=model_dir, run_id=_field(result, "run_id"),
                   params=_int(_field(result, "params", card.get("params"))),
                   macs=_int(_field(result, "macs", card.get("macs"))), card=card)


def _read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return {}


class Registry:
    def __init__(self, tracking_uri: str | None = None, cache_dir: Path | None = None, policy: str | None = None,
                 artifact_root: Path | None = None):
        settings = get_settings()
        self.uri = tracking_uri or settings.mlflow_uri
        self.cache_dir = Path(cache_dir or settings.home / "model_cache")
        self.policy = resolve_policy(policy)
        self.artifact_root = Path(artifact_root or settings.artifact_root)
        self.client = connect(self.uri)

    # ---- lookups -------------------------------------------------------------------------------------------
    def _registered(self, name: str):
        try:
            return self.client.get_registered_model(name)
        except mlflow.exceptions.MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise

    def _ensure_registered(self, name: str, dataset: str):
        if self._registered(name) is None:
            try:
                self.client.create_registered_model(
                    name, tags={"dataset": dataset},
                    description=f"SD-HRNet facial landmark models for the {dataset} landmark scheme; "
                                f"alias '{CHAMPION}' is served, '{CHALLENGER}' is the newest candidate.")
            except mlflow.exceptions.MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":  # a concurrent first registration
                    raise
        return self.client.get_registered_model(name)

    def _by_alias(self, name: str, alias: str):
        return version_by_alias(self.client, name, alias)

    def _version(self, name: str, version) -> Any:
        return model_version(self.client, name, version)

    def version_for_job(self, dataset: str, job_id: str):
        found = self.client.search_model_versions(
            f"name = '{model_name(dataset)}' and tags.job_id = '{_quote(job_id)}'")
        return min(found, key=lambda v: int(v.version)) if found else None

    # ---- registration -------------------------------------------------------------------------------------
    def register_result(self, result, job_id: str | None = None) -> int:
        """Register a finished job's model as challenger and apply the promotion policy. Idempotent per job id."""
        job_id = str(job_id or _field(result, "job_id") or "")
        if not job_id:
            raise RegistryError("register_result needs a job id (argument or result.job_id): it is what makes "
                                "registration idempotent")
        return int(self._register(_Candidate.from_result(result), job_id, source="job")["version"])

    def _register(self, cand: _Candidate, job_id: str, source: str, who: str = "policy") -> dict:
        name = model_name(cand.dataset)
        self._ensure_registered(name, cand.dataset)
        mv = self.version_for_job(cand.dataset, job_id)
        if mv is None:
            mv = self._create_version(name, cand, job_id, source)
        else:
            log.info("job %s already registered as %s v%s; not registering again", job_id, name, mv.version)
        if DECISION_TAG not in (mv.tags or {}):
            self._apply_policy(name, mv, who)
        return self.describe(cand.dataset, mv.version)

    def _create_version(self, name: str, cand: _Candidate, job_id: str, source: str):
        onnx_file = cand.model_dir / "model.onnx"
        if not onnx_file.is_file():
            raise RegistryError(f"{onnx_file} does not exist; a model folder needs model.onnx (plus weights.pt, "
                                "spec.json, config.json, model_card.json when available)")
        started = time.monotonic()
        run_id = cand.run_id or self._make_run(cand, job_id)
        experiment_id = self.client.get_run(run_id).info.experiment_id
        tags = {
            "dataset": cand.dataset, "num_landmarks": cand.num_landmarks, "input_size": cand.input_size,
            "nme": cand.metrics.get("nme"), "fr": cand.metrics.get("fr"), "auc": cand.metrics.get("auc"),
            "eval_split": cand.metrics.get("split"), "params": cand.params, "macs": cand.macs,
            "job_id": job_id, "source": source, "arch": cand.card.get("arch"),
            # the latency measured where the model was trained, and the budget it was pruned to (sweeps)
            "ms": cand.card.get("ms"), "ms_threads": cand.card.get("ms_threads"), "budget": cand.card.get("budget"),
        }
        tags = {k: _fmt(v) for k, v in tags.items() if v is not None}
        model_id = self._log_model(cand, onnx_file, run_id, experiment_id, tags)
        mv = self.client.create_model_version(
            name, f"models:/{model_id}", run_id=run_id, tags=tags, model_id=model_id,
            description=f"{cand.dataset}: NME {tags.get('nme', '?')} on split '{tags.get('eval_split', '?')}' "
                        f"(job {job_id})")
        log.info("registered %s v%s from job %s (run %s) in %.1fs", name, mv.version, job_id, run_id,
                 time.monotonic() - started)
        return mv

    def _log_model(self, cand: _Candidate, onnx_file: Path, run_id: str, experiment_id: str, tags: dict) -> str:
        import onnx
        from mlflow.models import ModelSignature
        from mlflow.types.schema import Schema, TensorSpec
        import numpy as np

        # created first with an explicit experiment: log_model alone would file it under the process's
        # active experiment, not the run's
        logged = self.client.create_logged_model(experiment_id=experiment_id, name="model", source_run_id=run_id,
                                                 tags=tags)
        size, out = cand.input_size, cand.input_size // 4
        signature = ModelSignature(
            inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 3, size, size), "image")]),
            outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, cand.num_landmarks, out, out), "heatmaps")]))
        extras = [str(cand.model_dir / f) for f in EXTRA_FILES if (cand.model_dir / f).is_file()]
        mlflow.set_tracking_uri(self.uri)
        info = mlflow.onnx.log_model(
            onnx.load(str(onnx_file)), name="model", run_id=run_id, model_id=logged.model_id,
            pip_requirements=pip_requirements(), extra_files=extras, signature=signature,
            save_as_external_data=False,  # one self-contained model.onnx for the API to download
            metadata={"dataset": cand.dataset, "num_landmarks": cand.num_landmarks, "input_size": cand.input_size,
                      "job_id": tags["job_id"]})
        return info.model_id

    def _make_run(self, cand: _Candidate, job_id: str) -> str:
        experiment_id = ensure_experiment(self.client, REGISTRY_EXPERIMENT,
                                          None if is_server_uri(self.uri) else self.artifact_root)
        run = self.client.create_run(experiment_id, run_name=f"{job_id}-{cand.dataset}",
                                     tags={"sdhrnet.job_id": job_id, "sdhrnet.dataset": cand.dataset})
        for key in ("nme", "fr", "auc"):
            if _float(cand.metrics.get(key)) is not None:
                self.client.log_metric(run.info.run_id, key, float(cand.metrics[key]))
        # the same layout as a training run, so models:/ URIs resolve to a model folder for any version
        self.client.log_artifacts(run.info.run_id, str(cand.model_dir), "model_files")
        self.client.set_terminated(run.info.run_id)
        return run.info.run_id

    def _apply_policy(self, name: str, mv, who: str) -> None:
        champion = self._by_alias(name, CHAMPION)
        self.client.set_registered_model_alias(name, CHALLENGER, mv.version)
        if champion is not None and champion.version == mv.version:
            promote, reason = False, "already champion"
        else:
            face_by_face = self.policy == "better-nme" and champion is not None  # else no download is needed
            promote, reason = decide(self.policy, self.decision_inputs(name, mv, face_by_face),
                                     None if champion is None else self.decision_inputs(name, champion, face_by_face))
        if promote:
            self._move_champion(name, str(mv.version), who, f"auto ({self.policy}): {reason}", action="auto-promote")
        decision = {"promoted": promote, "policy": self.policy, "reason": reason, "when": history.now_iso()}
        self.client.set_model_version_tag(name, mv.version, DECISION_TAG, json.dumps(decision))
        log.info("%s v%s: %s (%s)", name, mv.version, "champion" if promote else "stays challenger", reason)

    def decision_inputs(self, name: str, mv, face_by_face: bool = True) -> dict:
        """What the promotion policy compares of a model version: its NME figures from its tags, and its
        face-by-face scores when it was logged with them."""
        faces = self._face_scores(name, mv.version) if face_by_face else None
        return _version_metrics(mv.tags or {}) | {"faces": faces}

    def _face_scores(self, name: str, version) -> dict | None:
        """None for a version logged before face scores existed, or with a broken file; a tracking server that
        fails raises, so that the job's registration is retried rather than decided on less."""
        folder = f"models:/{name}/{version}/extra_files"
        listed = mlflow.artifacts.list_artifacts(artifact_uri=folder, tracking_uri=self.uri)
        if not any(Path(f.path).name == FACE_SCORES for f in listed):
            log.warning("%s v%s has no %s; the policy compares its mean NME", name, version, FACE_SCORES)
            return None
        with tempfile.TemporaryDirectory() as tmp:
            got = mlflow.artifacts.download_artifacts(artifact_uri=f"{folder}/{FACE_SCORES}", dst_path=tmp,
                                                      tracking_uri=self.uri)
            try:
                return read_face_scores(Path(got))
            except SelectionError as e:
                log.warning("%s v%s: %s; the policy compares its mean NME", name, version, e)
                return None

    # ---- champion changes -----------------------------------------------------------------------------------
    def _move_champion(self, name: str, new: str, who: str, reason: str, action: str) -> dict | None:
        """The event recorded, or None when `new` already is the champion: a change that changes nothing is not
        history (and would put the same version twice on the stack that rollback walks)."""
        old = self._by_alias(name, CHAMPION)
        old_version = None if old is None else str(old.version)
        if old_version == new:
            return None
        event = history.make_event(action, old_version, new, who, reason)
        self.client.set_registered_model_alias(name, CHAMPION, new)
        challenger = self._by_alias(name, CHALLENGER)
        if challenger is not None and str(challenger.version) == new:
            # the candidate has been decided; challenger names only versions still waiting
            self.client.delete_registered_model_alias(name, CHALLENGER)
        tag_prefix = "rolled_back" if action == "rollback" else "promoted"
        self.client.set_model_version_tag(name, new, f"{tag_prefix}_by", who)
        self.client.set_model_version_tag(name, new, f"{tag_prefix}_at", event["when"])
        tags = self.client.get_registered_model(name).tags or {}
        for key, value in history.with_event(tags, event).items():
            self.client.set_registered_model_tag(name, key, value)
        return event

    def promote(self, dataset: str, version, who: str = "unknown", reason: str = "manual") -> dict | None:
        """The history event, or None when `version` already is the champion (nothing is recorded)."""
        name = model_name(dataset)
        if self._registered(name) is None:
            raise ModelNotFound(f"no models registered for dataset '{dataset}'; train one (POST /jobs/slim) first")
        mv = self._version(name, version)
        return self._move_champion(name, str(mv.version), who, reason, action="promote")

    def best_within(self, dataset: str, limits: dict[str, float]) -> dict:
        """The most accurate version whose recorded costs hold every limit (kind -> maximum, sdhrnet.budgets), by
        the served-model rule (`why` says why). NMEs are only compared on one split: the champion's, else the one
        most versions were scored on."""
        unknown = set(limits) - set(BUDGET_KINDS)
        if unknown or not limits:
            raise RegistryError(f"a budget limits one or more of {', '.join(BUDGET_KINDS)}; got {sorted(limits)}")
        name = model_name(dataset)
        if self._registered(name) is None:
            raise ModelNotFound(f"no models registered for dataset '{dataset}'; train one (POST /jobs/slim) first")
        versions = [self._describe_version(mv) for mv in self.client.search_model_versions(f"name = '{name}'",
                                                                                           max_results=10000)]
        scored = [v for v in versions if v["metrics"]["nme"] is not None and math.isfinite(v["metrics"]["nme"])]
        champion = self._by_alias(name, CHAMPION)
        split = _version_metrics(champion.tags or {})["split"] if champion is not None else None
        if split is None and scored:
            splits = [v["metrics"]["split"] for v in scored]
            split = max(set(splits), key=splits.count)
        fitting = [v for v in scored if v["metrics"]["split"] == split and not over_budget(v["tags"], limits)]
        if fitting:
            return self._best_of(name, fitting)
        wanted = ", ".join(f"{k} <= {v:g}" for k, v in limits.items())
        closest = sorted(scored, key=lambda v: len(over_budget(v["tags"], limits)))[:3]
        why = "; ".join(f"v{v['version']}: {', '.join(over_budget(v['tags'], limits)) or 'scored on ' + str(v['metrics']['split'])}"
                        for v in closest) or "no version has an NME"
        raise NothingWithinBudget(f"no version of {name} scored on split '{split}' fits {wanted} ({why}); train one "
                                  "within it (POST /jobs/sweep) or relax the budget")

    def _best_of(self, name: str, versions: list[dict]) -> dict:
        """The served-model rule's pick, face by face where every version has face scores, else the lowest NME;
        of equals the oldest version. `why` says which and why."""
        ordered = sorted(versions, key=lambda v: int(v["version"]))
        docs = {f"v{v['version']}": v for v in ordered}
        faces = {label: self._face_scores(name, v["version"]) for label, v in docs.items()} if len(docs) > 1 else {}
        if faces and all(faces.values()):
            try:
                choice = choose_among(faces)
                return docs[choice.served] | {"why": f"face by face, {choice.why}"}
            except SelectionError as e:
                log.info("%s: %s; comparing mean NMEs", name, e)
        best = min(ordered, key=lambda v: v["metrics"]["nme"])
        return best | {"why": f"lowest NME ({best['metrics']['nme']:.5f})"}

    def promote_within(self, dataset: str, limits: dict[str, float], who: str = "unknown") -> dict | None:
        best = self.best_within(dataset, limits)
        wanted = ", ".join(f"{k} <= {v:g}" for k, v in limits.items())
        return self._move_champion(model_name(dataset), best["version"], who, f"{best['why']}, within {wanted}",
                                   action="promote")

    def rollback(self, dataset: str, who: str = "unknown", reason: str = "manual rollback") -> dict:
        name = model_name(dataset)
        registered = self._registered(name)
        if registered is None:
            raise ModelNotFound(f"no models registered for dataset '{dataset}'; nothing to roll back")
        stack = history.read_stack(registered.tags or {})
        current = self._by_alias(name, CHAMPION)
        if current is None or len(stack) < 2 or stack[-1] != str(current.version):
            raise RegistryConflict(f"{name} has no earlier champion to roll back to; promote a version explicitly")
        target = stack[-2]
        self._version(name, target)  # still exists?
        return self._move_champion(name, target, who, reason, action="rollback")

    # ---- reading ---------------------------------------------------------------------------------------------
    def describe(self, dataset: str, version) -> dict:
        name = model_name(dataset)
        return self._describe_version(self._version(name, version))

    @staticmethod
    def _describe_version(mv) -> dict:
        tags = dict(mv.tags or {})
        try:
            decision = json.loads(tags.get(DECISION_TAG) or "null")
        except ValueError:
            decision = None
        return {
            "name": mv.name, "version": str(mv.version), "aliases": sorted(getattr(mv, "aliases", []) or []),
            "run_id": mv.run_id, "dataset": tags.get("dataset"), "num_landmarks": _int(tags.get("num_landmarks")),
            "input_size": _int(tags.get("input_size")), "metrics": _version_metrics(tags),
            "params": _int(tags.get("params")), "macs": _int(tags.get("macs")), "ms": _float(tags.get("ms")),
            "budget": tags.get("budget"), "job_id": tags.get("job_id"),
            "source": tags.get("source"), "created": mv.creation_timestamp, "decision": decision, "tags": tags,
        }

    def list_models(self, dataset: str | None = None) -> list[dict]:
        names = [model_name(dataset)] if dataset else sorted(
            rm.name for rm in self.client.search_registered_models(f"name LIKE '{MODEL_PREFIX}%'", max_results=1000))
        models = []
        for name in names:
            registered = self._registered(name)
            if registered is None:
                continue
            versions = self.client.search_model_versions(f"name = '{name}'", max_results=10000)
            # search results do not carry aliases in every store version; the registered model does
            aliases = dict(getattr(registered, "aliases", {}) or {})
            described = []
            for mv in sorted(versions, key=lambda v: int(v.version), reverse=True):
                info = self._describe_version(mv)
                info["aliases"] = sorted(a for a, v in aliases.items() if str(v) == info["version"])
                described.append(info)
            tags = registered.tags or {}
            models.append({"name": name, "dataset": tags.get("dataset") or name[len(MODEL_PREFIX):],
                           "aliases": {a: str(v) for a, v in aliases.items()},
                           "champion": aliases.get(CHAMPION) and str(aliases[CHAMPION]),
                           "challenger": aliases.get(CHALLENGER) and str(aliases[CHALLENGER]),
                           "versions": described, "history": history.read_history(tags)})
        return models

    def champion(self, dataset: str, alias: str = CHAMPION) -> ServedModel | None:
        name = model_name(dataset)
        mv = self._by_alias(name, alias)
        if mv is None:
            return None
        folder = fetch_version(name, str(mv.version), self.cache_dir, self.uri)
        card = _read_json(folder / "model_card.json")
        tags = mv.tags or {}
        return ServedModel(name=name, version=str(mv.version), alias=alias, run_id=mv.run_id,
                           dataset=tags.get("dataset") or card.get("dataset") or dataset,
                           num_landmarks=_int(tags.get("num_landmarks")) or int(card["num_landmarks"]),
                           input_size=_int(tags.get("input_size")) or int(card["input_size"]),
                           onnx_path=folder / "model.onnx", card=card)

    def register_default_if_empty(self, model_dir: Path) -> int | None:
        """Register the bundled model as champion when its dataset has no versions yet. Returns the version
        registered, or None when the registry already held models for that dataset."""
        cand = _Candidate.from_result({"model_dir": Path(model_dir)})
        name = model_name(cand.dataset)
        registered = self._registered(name)
        if registered is not None and self.client.search_model_versions(f"name = '{name}'", max_results=1):
            if self.version_for_job(cand.dataset, DEFAULT_JOB_ID) is None:
                return None
            # a half-finished earlier attempt (crash between version and alias): finish it
        info = self._register(cand, DEFAULT_JOB_ID, source="bundled-default", who="system")
        if self._by_alias(name, CHAMPION) is None:  # even under the manual policy: something must be served
            self._move_champion(name, info["version"], "system", "bundled default model", action="promote")
        return int(info["version"])


def version_by_alias(client, name: str, alias: str):
    """The version of registered model `name` that `alias` names; None when there is no such model or alias."""
    try:
        return client.get_model_version_by_alias(name, alias)
    except mlflow.exceptions.MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise


def model_version(client, name: str, version):
    """Version `version` of registered model `name`; ModelNotFound when there is none."""
    try:
        return client.get_model_version(name, str(version))
    except mlflow.exceptions.MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            raise ModelNotFound(f"{name} has no version '{version}'; GET /models lists the versions") from None
        raise


MODELS_URI = "models:/"


def run_of_model_uri(uri: str, client=None) -> str:
    """The run behind a registered version, named `models:/NAME/VERSION` or `models:/NAME@ALIAS` (what the trainer's
    --model, --teacher and --from-slim accept)."""
    if not uri.startswith(MODELS_URI):
        raise ValueError(f"{uri!r} is not a registered model URI: models:/NAME/VERSION or models:/NAME@ALIAS")
    body = uri[len(MODELS_URI):]
    client = client or tracking_client()
    if "@" in body:
        name, alias = body.split("@", 1)
        mv = version_by_alias(client, name, alias)
        if mv is None:
            raise ModelNotFound(f"{uri}: no registered model {name} with the alias '{alias}'")
    else:
        name, _, version = body.partition("/")
        if not version:
            raise ValueError(f"model URI {uri!r} needs a version or an alias: models:/NAME/VERSION or models:/NAME@ALIAS")
        mv = model_version(client, name, version)
    if not mv.run_id:
        raise ValueError(f"registered model {uri} has no run behind it")
    return mv.run_id


def run_exists(run_id: str, client=None) -> bool:
    """Whether the tracking store holds this run (a job's slim_run or teacher_run, checked when it is submitted)."""
    try:
        (client or tracking_client()).get_run(run_id)
    except mlflow.exceptions.MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return False
        raise
    return True


def _quote(value: str) -> str:
    return str(value).replace("'", "\\'")


_default: Registry | None = None
_default_key: tuple | None = None


def get_registry() -> Registry:
    """The process-wide registry for the current settings (rebuilt when the tracking URI changes)."""
    global _default, _default_key
    settings = get_settings()
    key = (settings.mlflow_uri, str(settings.home), resolve_policy())
    if _default is None or _default_key != key:
        _default, _default_key = Registry(), key
    return _default


def register_result(result, job_id: str | None = None) -> int:
    return get_registry().register_result(result, job_id)


def promote(dataset: str, version, who: str = "unknown") -> dict | None:
    return get_registry().promote(dataset, version, who=who)


def promote_within(dataset: str, limits: dict[str, float], who: str = "unknown") -> dict | None:
    return get_registry().promote_within(dataset, limits, who=who)


def rollback(dataset: str, who: str = "unknown") -> dict:
    return get_registry().rollback(dataset, who=who)


def list_models(dataset: str | None = None) -> list[dict]:
    return get_registry().list_models(dataset)


def champion(dataset: str) -> ServedModel | None:
    return get_registry().champion(dataset)


def register_default_if_empty(model_dir) -> int | None:
    return get_registry().register_default_if_empty(Path(model_dir))
