"""The model registry: every trained model, what data it saw, how it scored and its status.

`model_registry` holds one row per model; every status change also appends a row to
`model_registry_audit`, so who promoted or rolled back what, when and why is never lost.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa

from ..catalog.models import MODEL_REGISTRY, REGISTRY_AUDIT
from ..lake.tables import Lake

CANDIDATE, PROMOTED, REJECTED, RETIRED = "candidate", "promoted", "rejected", "retired"
STATUSES = (CANDIDATE, PROMOTED, REJECTED, RETIRED)
TRIGGERS = ("threshold", "drift", "manual")


class RegistryError(Exception):
    """A registry change that cannot be made; the message says why."""


@dataclass(frozen=True)
class ModelRecord:
    model_id: str
    base_model: str
    adapter_uri: str
    method: str
    hyperparameters: Mapping[str, object]
    snapshot_id: str
    dataset_versions: Mapping[str, int]
    metrics: Mapping[str, object]
    trigger: str
    run_key: str
    run_id: str


class Registry:
    def __init__(self, lake: Lake):
        self.lake = lake

    def models(self) -> list[dict]:
        """Every model, newest first, with its JSON columns decoded."""
        table = self.lake.read(MODEL_REGISTRY.name)
        if table is None:
            return []
        rows = table.sort_by([("created_at", "descending")]).to_pylist()
        for row in rows:
            for col in ("hyperparameters", "dataset_versions", "metrics"):
                row[col] = json.loads(row[col] or "{}")
        return rows

    def get(self, model_id: str) -> dict | None:
        return next((m for m in self.models() if m["model_id"] == model_id), None)

    def production(self) -> dict | None:
        """The promoted model, if any."""
        return next((m for m in self.models() if m["status"] == PROMOTED), None)

    def audit(self) -> list[dict]:
        table = self.lake.read(REGISTRY_AUDIT.name)
        return [] if table is None else table.sort_by("at").to_pylist()

    def register(self, record: ModelRecord, *, status: str, reason: str, actor: str) -> None:
        if status not in (CANDIDATE, REJECTED):
            raise RegistryError(f"a new model is registered as candidate or rejected, not {status}")
        if record.trigger not in TRIGGERS:
            raise RegistryError(f"unknown trigger {record.trigger!r}; one of {TRIGGERS}")
        if self.get(record.model_id) is not None:
            raise RegistryError(f"model {record.model_id} is already registered")
        now = datetime.now(UTC)
        row = {
            "model_id": record.model_id,
            "base_model": record.base_model,
            "adapter_uri": record.adapter_uri,
            "method": record.method,
            "hyperparameters": json.dumps(record.hyperparameters, sort_keys=True, default=str),
            "snapshot_id": record.snapshot_id,
            "dataset_versions": json.dumps(record.dataset_versions, sort_keys=True),
            "metrics": json.dumps(record.metrics, sort_keys=True, default=str),
            "status": status,
            "status_reason": reason,
            "trigger": record.trigger,
            "run_key": record.run_key,
            "run_id": record.run_id,
            "created_at": now,
            "updated_at": now,
        }
        self._upsert([row], actor=actor)
        self._audit(
            [(record.model_id, None, status, reason)], actor=actor, at=now, action="register"
        )

    def promote(self, model_id: str, *, reason: str, actor: str) -> list[tuple[str, str, str]]:
        """Promote a model; the model promoted before it is retired. Returns the changes made."""
        target = self.get(model_id)
        if target is None:
            known = ", ".join(m["model_id"] for m in self.models()[:5]) or "none"
            raise RegistryError(f"no model {model_id!r} in the registry (newest: {known})")
        if target["status"] == PROMOTED:
            raise RegistryError(f"model {model_id} is already promoted")
        changes = [(m["model_id"], PROMOTED, RETIRED) for m in self._promoted()]
        changes.append((model_id, target["status"], PROMOTED))
        self._change(changes, reason=reason, actor=actor, action="promote")
        return changes

    def rollback(self, *, reason: str, actor: str) -> list[tuple[str, str, str]]:
        """Retire the promoted model and re-promote the one promoted before it.

        Promotions form a stack: a rollback pops one, so rolling back twice goes two models back
        (never back to the model just rolled back from).
        """
        current = self.production()
        if current is None:
            raise RegistryError("no model is promoted: nothing to roll back")
        stack = self._promotion_stack()
        if len(stack) < 2:
            raise RegistryError(
                f"{current['model_id']} is the only model promoted: nothing to roll back to"
            )
        previous = self.get(stack[-2])
        changes = [
            (current["model_id"], PROMOTED, RETIRED),
            (previous["model_id"], previous["status"], PROMOTED),
        ]
        self._change(changes, reason=reason, actor=actor, action="rollback")
        return changes

    def _promotion_stack(self) -> list[str]:
        stack: list[str] = []
        for a in self.audit():
            if a["action"] == "promote" and a["to_status"] == PROMOTED:
                stack = [m for m in stack if m != a["model_id"]] + [a["model_id"]]
            elif a["action"] == "rollback" and a["to_status"] == RETIRED and stack:
                stack.pop()
        return stack

    def _promoted(self) -> list[dict]:
        return [m for m in self.models() if m["status"] == PROMOTED]

    def _change(
        self, changes: list[tuple[str, str, str]], *, reason: str, actor: str, action: str
    ) -> None:
        now = datetime.now(UTC)
        table = self.lake.read(MODEL_REGISTRY.name)
        by_id = {r["model_id"]: r for r in table.to_pylist()}
        rows = [
            by_id[model_id] | {"status": to, "status_reason": reason, "updated_at": now}
            for model_id, _, to in changes
        ]
        self._upsert(rows, actor=actor)
        self._audit([(m, f, t, reason) for m, f, t in changes], actor=actor, at=now, action=action)

    def _upsert(self, rows: list[dict], *, actor: str) -> None:
        # One commit: a promotion and the retirement it implies land together or not at all.
        source = pa.Table.from_pylist(rows, schema=MODEL_REGISTRY.schema)
        self.lake.upsert(MODEL_REGISTRY, source, key="model_id", metadata={"flywheel.actor": actor})

    def _audit(self, changes: list[tuple], *, actor: str, at: datetime, action: str) -> None:
        rows = [
            {
                "at": at,
                "model_id": m,
                "from_status": f,
                "to_status": t,
                "reason": r,
                "action": action,
                "actor": actor,
            }
            for m, f, t, r in changes
        ]
        self.lake.append(REGISTRY_AUDIT, pa.Table.from_pylist(rows, schema=REGISTRY_AUDIT.schema))
