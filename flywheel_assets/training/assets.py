"""Retrain assets: snapshot the curated sets, train a LoRA adapter, evaluate it against production,
gate it and register it; and the drift monitor that watches the app's own feedback."""

import json

import dagster as dg
from pydantic import Field

from ..catalog.models import CANDIDATE_EVALS, MODEL_REGISTRY, REGISTRY_AUDIT, TRAINING_SNAPSHOTS
from ..lake.tables import Lake
from ..metadata import asset_args, rows_now, table_metadata
from ..reports import AdapterReport, SnapshotReport
from ..resources import LakeResource
from .base_models import resolve_base_model
from .eval_results import scored_rows
from .evaluation import compare_golden, judge_rates, load_judge
from .gate import GatePolicy, decide
from .progress import progress_bar
from .registry import CANDIDATE, REJECTED, ModelRecord, Registry
from .resources import TrainingResource
from .retrain import (
    eval_cases,
    evaluate,
    model_id_for,
    model_store_root,
    training_rows,
)
from .snapshot import FAILURE_CLUSTER_TAG, Snapshot, TooLittleData, snapshot_for_run, take_snapshot

GROUP = "training"
TRIGGER_TAG = "flywheel/trigger"
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


class SnapshotConfig(dg.Config):
    min_new_rows: int = Field(
        default=1,
        description="Stop early unless at least this many curated training rows were added since "
        "the last snapshot (0: retrain on the same data again).",
    )


class LoraConfig(dg.Config):
    """How the adapter is trained. The defaults train SmolLM2-135M-Instruct on the sample's sets in
    minutes on two CPU cores: one pass, LoRA on the last 8 blocks."""

    method: str = Field(
        default="sft+dpo",
        description="sft, dpo, sft+dpo (SFT, then DPO from the SFT adapter) or kto.",
    )
    epochs: float = Field(default=1.0, description="Passes over each training set.")
    learning_rate: float = Field(default=1e-3, description="Peak learning rate.")
    batch_size: int = Field(default=8, description="Rows per device batch.")
    lora_r: int = Field(default=16, description="LoRA rank.")
    lora_alpha: int = Field(default=32, description="LoRA scaling alpha.")
    lora_dropout: float = Field(default=0.0, description="Dropout on the LoRA layers.")
    target_modules: list[str] = Field(
        default_factory=lambda: list(ALL_LINEAR),
        description="Modules that get LoRA weights; the default is every linear layer of a "
        "Llama-style block.",
    )
    top_layers: int = Field(
        default=8,
        description="LoRA on the last N transformer blocks only (0: every block); gradients then "
        "flow through those blocks alone, most of what a CPU step costs.",
    )
    max_length: int = Field(default=256, description="Longest tokenized example kept.")
    beta: float = Field(default=0.1, description="DPO / KTO beta.")
    seed: int = Field(default=0, description="Random seed.")
    device: str = Field(default="auto", description="auto (GPU when there is one), cpu or cuda.")
    correction_weight: int = Field(
        default=1,
        description="SFT rows whose target is a user's or operator's correction or edit count "
        "this many times (the model's own accepted answers once).",
    )
    cluster_weight: int = Field(
        default=2,
        description="A retrain that targets a failure cluster trains on the cluster's rows this "
        "many times (the rest once).",
    )


class EvalConfig(dg.Config):
    """How the candidate and production are scored, and what the gate asks of the candidate."""

    max_cases: int | None = Field(
        default=200,
        description="Evaluate at most this many cases: every held-out and regression case first, "
        "then golden ones, spread evenly. Empty: all of them.",
    )
    generate_cases: int = Field(
        default=24,
        description="Generate an answer on this many cases (a seeded subset, every kind in it) "
        "and score it with the judge; 0: likelihood only.",
    )
    threshold: float = Field(
        default=0.8, description="A generated answer passes when the judge's score reaches this."
    )
    judge: str | None = Field(
        default=None,
        description="'package.module:function(inputs, expected, outputs) -> scores in [0, 1]'. "
        "Empty: rapidfuzz normalized similarity to the expected answer.",
    )
    max_new_tokens: int = Field(default=64, description="Longest generated answer, in tokens.")
    metric: str = Field(
        default="loglik",
        description="The per-case score the gate compares: loglik (mean per-token "
        "log-likelihood of the expected answer) or margin (expected minus corrected answer, "
        "regression cases only).",
    )
    golden_tolerance: float = Field(
        default=0.25,
        description="A golden case breaks when the candidate's loglik of its answer is more than "
        "this (nats per token) below production's.",
    )
    confidence: float = Field(
        default=0.95, description="Confidence of the paired bootstrap interval of the gain."
    )
    min_gain: float = Field(
        default=0.0, description="The interval's lower bound must exceed this to promote."
    )
    min_holdout_cases: int = Field(
        default=10, description="With fewer scorable held-out cases the gate cannot judge."
    )
    max_golden_breaks: int = Field(
        default=0,
        description="Golden cases production passes that the candidate may fail and still ship.",
    )
    seed: int = Field(default=0, description="Seed of the bootstrap and the generated subset.")


class PromotionConfig(dg.Config):
    auto_promote: bool = Field(
        default=True,
        description="Promote a candidate that passes the gate. Off: it stays a candidate until "
        "`flywheel promote`.",
    )


def _root_run_id(context) -> str:
    # A re-execution of a failed step keeps working on its original run's snapshot.
    return context.run.root_run_id or context.run.run_id


def _pinned(context, lake: Lake) -> Snapshot:
    snapshot = snapshot_for_run(lake, _root_run_id(context))
    if snapshot is None:
        raise dg.Failure(
            "no training snapshot for this run: materialize training_snapshot in the same run "
            "(retrain_job does)"
        )
    return snapshot


@dg.asset(
    name=TRAINING_SNAPSHOTS.name,
    **asset_args(TRAINING_SNAPSHOTS.name),
    deps=["sft_set", "dpo_set", "kto_set", "eval_cases"],
    output_required=False,
)
def training_snapshot(
    context: dg.AssetExecutionContext, config: SnapshotConfig, lake: LakeResource
):
    the_lake = lake.lake()
    before = rows_now(the_lake, TRAINING_SNAPSHOTS.name)
    tags = context.run.tags
    try:
        snap = take_snapshot(
            the_lake,
            run_id=_root_run_id(context),
            trigger=tags.get(TRIGGER_TAG, "manual"),
            run_key=tags.get("dagster/run_key", ""),
            min_new_rows=config.min_new_rows,
            target_cluster=tags.get(FAILURE_CLUSTER_TAG),
        )
    except TooLittleData as exc:
        # Not an error: nothing downstream runs, and the run says why.
        context.log.warning(f"retrain stopped early: {exc}")
        context.instance.add_run_tags(context.run.run_id, {"flywheel/stopped": str(exc)[:250]})
        return
    yield dg.MaterializeResult(
        metadata=table_metadata(
            the_lake,
            TRAINING_SNAPSHOTS.name,
            before,
            **SnapshotReport(
                snapshot_id=snap.snapshot_id,
                dataset_versions=snap.versions,
                rows_at_versions=snap.rows,
                new_rows=snap.new_rows,
            ).metadata(),
        )
    )


@dg.asset(
    deps=[TRAINING_SNAPSHOTS.name],
    group_name=GROUP,
    kinds={"pytorch"},
    description="One LoRA adapter per retrain run, trained with peft and TRL on the snapshot's "
    "pinned sets (sft, dpo, sft+dpo or kto) and saved with its training config under the model "
    "store.",
)
def lora_adapter(
    context: dg.AssetExecutionContext,
    config: LoraConfig,
    lake: LakeResource,
    training: TrainingResource,
) -> dg.MaterializeResult:
    from .trainer import LoraSettings, train_lora

    try:
        # LoraConfig's fields are LoraSettings' own, by name.
        settings = LoraSettings(
            **config.model_dump(exclude={"cluster_weight", "correction_weight"})
        )
    except ValueError as exc:
        raise dg.Failure(f"invalid lora_adapter config: {exc}") from None
    the_lake = lake.lake()
    snap = _pinned(context, the_lake)
    store = model_store_root(training.model_store, the_lake)
    rows = training_rows(the_lake, snap, config.cluster_weight, config.correction_weight)
    if snap.target_cluster:
        context.log.info(
            f"targets failure cluster {snap.target_cluster}: its rows count "
            f"{config.cluster_weight} times"
        )
    try:
        base = resolve_base_model(training.resolved_base_model(), store)
    except ValueError as exc:
        raise dg.Failure(f"cannot load the base model: {exc}") from None
    model_id = model_id_for(snap, _root_run_id(context))
    try:
        result = train_lora(
            base,
            store / model_id,
            sft_rows=rows["sft_set"],
            dpo_rows=rows["dpo_set"],
            kto_rows=rows["kto_set"],
            settings=settings,
        )
    except ValueError as exc:
        raise dg.Failure(f"cannot train {config.method}: {exc}") from None
    stages = {s["stage"]: s for s in result.stages}
    for name, stage in stages.items():
        context.log.info(
            f"{name}: {stage['rows']} rows, {stage['steps']} steps, loss "
            f"{stage['first_loss']:.3f} -> {stage['last_loss']:.3f} in {stage['seconds']:.1f}s"
        )
    return dg.MaterializeResult(
        metadata={
            **AdapterReport(
                model_id=model_id,
                base_model=base,
                method=config.method,
                device=result.device,
                snapshot_id=snap.snapshot_id,
                losses={
                    n: {"first": s["first_loss"], "last": s["last_loss"]} for n, s in stages.items()
                },
            ).metadata(),
            "adapter_uri": dg.MetadataValue.path(str(store / model_id)),
            "dataset_versions": dg.MetadataValue.json(snap.versions),
        }
    )


@dg.asset(
    name=CANDIDATE_EVALS.name,
    **asset_args(CANDIDATE_EVALS.name),
    deps=["lora_adapter"],
    check_specs=[
        dg.AssetCheckSpec(
            "candidate_passes_gate",
            asset=CANDIDATE_EVALS.name,
            blocking=True,
            description="The candidate's mean held-out gain over production is significant (its "
            "paired bootstrap interval lies above min_gain) and it breaks no more golden cases "
            "that production passes than max_golden_breaks. A failing candidate is registered "
            "as rejected with the reason and the interval, and is not promoted.",
        )
    ],
)
def candidate_eval(
    context: dg.AssetExecutionContext,
    config: EvalConfig,
    lake: LakeResource,
    training: TrainingResource,
):
    the_lake = lake.lake()
    before_rows = rows_now(the_lake, CANDIDATE_EVALS.name)
    snap = _pinned(context, the_lake)
    run_id = _root_run_id(context)
    model_id = model_id_for(snap, run_id)
    store = model_store_root(training.model_store, the_lake)
    adapter = store / model_id
    trained = _training_info(adapter)
    try:
        judge = load_judge(config.judge)
        policy = GatePolicy(
            confidence=config.confidence,
            min_gain=config.min_gain,
            min_holdout_cases=config.min_holdout_cases,
            max_golden_breaks=config.max_golden_breaks,
            metric=config.metric,
            seed=config.seed,
        )
    except ValueError as exc:
        raise dg.Failure(f"invalid candidate_eval config: {exc}") from None
    cases = eval_cases(the_lake, snap, config.max_cases)
    registry = Registry(the_lake)
    production = registry.production()
    prod_id = production["model_id"] if production else "base"
    prod_base = production["base_model"] if production else trained["base_model"]
    prod_adapter = production["adapter_uri"] if production else None
    kwargs = {
        "judge": judge,
        "threshold": config.threshold,
        "max_new_tokens": config.max_new_tokens,
        "generate_cases": config.generate_cases,
        "seed": config.seed,
    }
    context.log.info(f"evaluating {prod_id} and {model_id} on {cases.num_rows} eval cases")
    before = evaluate(prod_base, prod_adapter, cases, progress=progress_bar(prod_id), **kwargs)
    after = evaluate(
        trained["base_model"], str(adapter), cases, progress=progress_bar(model_id), **kwargs
    )
    before, after = compare_golden(before, after, config.golden_tolerance)
    the_lake.append(
        CANDIDATE_EVALS,
        scored_rows(
            model_id, [("production", prod_id, before), ("candidate", model_id, after)], run_id
        ),
        metadata={"flywheel.run_id": run_id},
    )
    decision = decide(before, after, policy)
    gate = decision.record()
    metrics = {
        "before": decision.before,
        "after": decision.after,
        "production_model": prod_id,
        "gate": gate,
        "generated": {"production": judge_rates(before), "candidate": judge_rates(after)},
        "judge": config.judge or "rapidfuzz.ratio",
        "threshold": config.threshold,
        "losses": trained.get("losses", {}),
    }
    record = ModelRecord(
        model_id=model_id,
        base_model=trained["base_model"],
        adapter_uri=str(adapter),
        method=trained["method"],
        hyperparameters=trained["settings"],
        snapshot_id=snap.snapshot_id,
        dataset_versions=snap.versions,
        metrics=metrics,
        trigger=context.run.tags.get(TRIGGER_TAG, "manual"),
        run_key=context.run.tags.get("dagster/run_key", ""),
        run_id=run_id,
    )
    status = CANDIDATE if decision.promote else REJECTED
    registry.register(record, status=status, reason=decision.summary, actor=context.run.run_id)
    context.log.info(f"gate: {'pass' if decision.promote else 'reject'}: {decision.summary}")
    interval = gate["interval"] or {}
    yield dg.MaterializeResult(
        metadata=table_metadata(
            the_lake,
            CANDIDATE_EVALS.name,
            before_rows,
            model_id=model_id,
            production_model=prod_id,
            cases=cases.num_rows,
            pass_rates=dg.MetadataValue.md(_rates_markdown(decision.before, decision.after)),
            **_gain_metadata(interval, gate["flips"]["counts"]),
        )
    )
    yield dg.AssetCheckResult(
        check_name="candidate_passes_gate",
        passed=decision.promote,
        metadata={
            "model_id": model_id,
            "reasons": dg.MetadataValue.json(decision.reasons),
            "test": gate["test"],
            "broken_golden": dg.MetadataValue.json(decision.broken_golden[:50]),
            "holdout_before": decision.before["holdout"]["pass_rate"],
            "holdout_after": decision.after["holdout"]["pass_rate"],
            **_gain_metadata(interval, gate["flips"]["counts"]),
        },
    )


def _gain_metadata(interval: dict, counts: dict) -> dict:
    """The held-out gain and the flips as numbers, so the UI can plot them run over run."""
    out = {
        f"gain_{name}": dg.FloatMetadataValue(float(interval[name]))
        for name in ("mean", "low", "high")
        if interval.get(name) is not None
    }
    for direction in ("fixed", "broken"):
        for kind, n in counts.get(direction, {}).items():
            out[f"{direction}_{kind}"] = dg.IntMetadataValue(int(n))
    return out


def _training_info(adapter) -> dict:
    info = adapter / "flywheel_training.json"
    if not info.exists():
        raise dg.Failure(f"no trained adapter at {adapter}: lora_adapter must run first")
    data = json.loads(info.read_text())
    stages = data.get("stages", [])
    data["losses"] = {s["stage"]: [s["first_loss"], s["last_loss"]] for s in stages}
    return data


def _rates_markdown(before: dict, after: dict) -> str:
    lines = ["| cases | n | production | candidate |", "|---|---|---|---|"]
    for split in ("holdout", "golden", "regression", "all"):
        lines.append(
            f"| {split} | {after[split]['cases']} | {before[split]['pass_rate']:.3f} "
            f"| {after[split]['pass_rate']:.3f} |"
        )
    return "\n".join(lines)


@dg.asset(
    name=MODEL_REGISTRY.name,
    **asset_args(MODEL_REGISTRY.name),
    deps=[CANDIDATE_EVALS.name],
)
def model_registry(
    context: dg.AssetExecutionContext, config: PromotionConfig, lake: LakeResource
) -> dg.MaterializeResult:
    the_lake = lake.lake()
    snap = _pinned(context, the_lake)
    model_id = model_id_for(snap, _root_run_id(context))
    registry = Registry(the_lake)
    model = registry.get(model_id)
    if model is None:
        raise dg.Failure(f"model {model_id} is not registered: candidate_eval must run first")
    if config.auto_promote and model["status"] == CANDIDATE:
        registry.promote(
            model_id, reason=f"passed the gate: {model['status_reason']}", actor=context.run.run_id
        )
        model = registry.get(model_id)
    return dg.MaterializeResult(
        metadata=table_metadata(
            the_lake,
            MODEL_REGISTRY.name,
            0,
            model_id=model_id,
            status=model["status"],
            dataset_versions=dg.MetadataValue.json(model["dataset_versions"]),
            metrics=dg.MetadataValue.json(model["metrics"]),
        )
    )


model_registry_audit = dg.AssetSpec(REGISTRY_AUDIT.name, **asset_args(REGISTRY_AUDIT.name))

RETRAIN_ASSETS = [training_snapshot, lora_adapter, candidate_eval, model_registry]
ASSETS = [*RETRAIN_ASSETS, model_registry_audit]
