"""`flywheel retrain`, `models`, `promote` and `rollback-model`: the retraining loop."""

from __future__ import annotations

import argparse
import json

from ..reports import AdapterReport, SnapshotReport
from .options import add_json, add_lake, add_locations, lake_of, landing_of
from .output import CliError, format_table
from .runner import run_job_for_cli


def add_commands(sub) -> None:
    retrain = sub.add_parser(
        "retrain",
        help="train, evaluate, gate and register a LoRA adapter on the curated sets (retrain_job)",
        description="Run retrain_job in this process: pin the versions of sft_set, dpo_set, "
        "kto_set and eval_cases, train a LoRA adapter on them (peft + TRL), evaluate it and the "
        "production model on the eval cases, promote it only if it passes the gate, and register "
        "it either way. The default base model, SmolLM2-135M-Instruct, installs with the training "
        "extra and runs offline, on a GPU when there is one.",
    )
    add_locations(retrain)
    retrain.add_argument(
        "--method", choices=["sft", "dpo", "sft+dpo", "kto"], help="training method (sft+dpo)"
    )
    retrain.add_argument(
        "--base-model",
        help="smollm2-135m-instruct (default, pretrained, offline), tiny (random-init, for tests), "
        "a local model folder, or a model hub id",
    )
    retrain.add_argument("--model-store", metavar="DIR", help="adapters folder (lake/models)")
    retrain.add_argument("--epochs", type=float, help="passes over each training set (2)")
    retrain.add_argument("--learning-rate", type=float, help="peak learning rate (1e-3)")
    retrain.add_argument(
        "--min-new-rows",
        type=int,
        default=1,
        help="stop unless this many curated rows were added since the last snapshot (1; 0: "
        "retrain on the same data)",
    )
    retrain.add_argument("--max-eval-cases", type=int, help="evaluate at most N cases")
    retrain.add_argument(
        "--threshold", type=float, help="judge score a generated answer needs to pass (0.8)"
    )
    retrain.add_argument(
        "--generate-cases", type=int, metavar="N", help="generate and judge answers on N cases (24)"
    )
    retrain.add_argument(
        "--min-holdout-cases",
        type=int,
        metavar="N",
        help="the gate judges only with at least N held-out cases (10)",
    )
    retrain.add_argument(
        "--no-promote", action="store_true", help="leave a passing candidate unpromoted"
    )
    retrain.add_argument("--verbose", action="store_true", help="show Dagster's step log")
    retrain.set_defaults(handler=_retrain)

    models = sub.add_parser(
        "models",
        help="list the model registry: status, method, trigger, pass rates, dataset versions",
        description="List every registered model, newest first, with the Delta versions of the "
        "curated sets it was trained on and its holdout pass rate against production's.",
    )
    add_lake(models)
    add_json(models)
    models.set_defaults(handler=_models)

    promote = sub.add_parser(
        "promote",
        help="promote a registered model (the promoted one is retired); runs promote_model_job",
        description="Promote MODEL_ID by hand, for example a candidate left by --no-promote or a "
        "rejected model an operator overrides. The model promoted before is retired.",
    )
    promote.add_argument(
        "model_id", metavar="MODEL_ID", help="the model to promote (flywheel models)"
    )
    promote.add_argument("--reason", default="promoted by hand", help="why, for the audit trail")
    add_locations(promote)
    promote.set_defaults(handler=_promote)

    rollback = sub.add_parser(
        "rollback-model",
        help="retire the promoted model and re-promote the one before it (rollback_model_job)",
        description="Retire the promoted model and re-promote the model that was promoted "
        "before it.",
    )
    rollback.add_argument("--reason", default="rolled back by hand", help="why, for the audit")
    add_locations(rollback)
    rollback.set_defaults(handler=_rollback_model)


def _retrain(args: argparse.Namespace) -> int:
    from ..training.registry import Registry
    from ..training.snapshot import TooLittleData, check_new_data
    from .runner import RunFailed, execute_job, materializations

    lake = lake_of(args)
    try:
        check_new_data(lake, args.min_new_rows)
    except TooLittleData as exc:
        raise CliError(f"nothing to retrain: {exc}") from None
    lora = {"method": args.method, "epochs": args.epochs, "learning_rate": args.learning_rate}
    evals = {
        "max_cases": args.max_eval_cases,
        "threshold": args.threshold,
        "generate_cases": args.generate_cases,
        "min_holdout_cases": args.min_holdout_cases,
    }
    training = {"base_model": args.base_model, "model_store": args.model_store}
    ops = {
        "training_snapshot": {"min_new_rows": args.min_new_rows},
        "lora_adapter": _given(lora),
        "candidate_eval": _given(evals),
        "model_registry": {"auto_promote": not args.no_promote},
    }
    run_config = {
        "ops": {op: {"config": cfg} for op, cfg in ops.items() if cfg},
        "resources": {"training": {"config": _given(training)}},
    }
    try:
        result = execute_job(
            "retrain_job",
            landing=landing_of(args),
            lake=lake.root,
            run_config=run_config,
            verbose=args.verbose,
        )
        failure = None
    except RunFailed as exc:
        if exc.result is None:
            raise CliError(str(exc)) from None
        result, failure = exc.result, str(exc)
    mats = materializations(result)
    adapter = AdapterReport.from_metadata(mats.get("lora_adapter", {}))
    model = Registry(lake).get(adapter.model_id) if adapter else None
    if model is None:
        raise CliError(failure or "retrain_job registered no model")
    snapshot = SnapshotReport.from_metadata(mats.get("training_snapshot", {})) or SnapshotReport()
    _print_retrain(snapshot, adapter, model)
    return 0


def _given(config: dict) -> dict:
    return {k: v for k, v in config.items() if v is not None}


def _print_retrain(snapshot: SnapshotReport, adapter: AdapterReport, model: dict) -> None:
    rows, new = snapshot.rows_at_versions, snapshot.new_rows
    print(f"snapshot {snapshot.snapshot_id}")
    print(
        format_table(
            ["table", "version", "rows", "new rows"],
            [
                [t, v, rows.get(t, 0), f"+{new[t]}" if t in new else "-"]
                for t, v in model["dataset_versions"].items()
            ],
        )
    )
    losses = ", ".join(
        f"{stage} loss {loss['first']:.3f} -> {loss['last']:.3f}"
        for stage, loss in adapter.losses.items()
    )
    print()
    print(f"trained {model['model_id']} ({model['method']}) on {adapter.device}: {losses}")
    print(f"adapter: {model['adapter_uri']}")
    metrics = model["metrics"]
    before, after = metrics.get("before", {}), metrics.get("after", {})
    print()
    print(
        f"evaluated against {metrics.get('production_model')}: a regression case passes when the "
        "model ranks the correction above the corrected answer, a golden one when the candidate "
        "finds it about as likely as production"
    )
    print(
        format_table(
            ["cases", "n", "production", "candidate"],
            [
                [
                    split,
                    after[split]["cases"],
                    f"{before[split]['pass_rate']:.3f}",
                    f"{after[split]['pass_rate']:.3f}",
                ]
                for split in ("holdout", "golden", "regression", "all")
                if split in after
            ],
        )
    )
    counts = metrics.get("gate", {}).get("flips", {}).get("counts", {})
    print()
    if counts:
        fixed, broken = counts.get("fixed", {}), counts.get("broken", {})
        print(
            "flips: "
            + ", ".join(
                f"{kind} {fixed.get(kind, 0)} fixed, {broken.get(kind, 0)} broken"
                for kind in ("regression", "golden")
            )
        )
    generated = metrics.get("generated", {})
    if generated.get("candidate", {}).get("cases"):
        b, a = generated["production"], generated["candidate"]
        print(
            f"generated answers ({metrics.get('judge')} >= {metrics.get('threshold')}) on "
            f"{a['cases']} cases: {b['pass_rate']:.3f} -> {a['pass_rate']:.3f}"
        )
    print()
    print(f"{model['status']}: {model['status_reason']}")


def _models(args: argparse.Namespace) -> int:
    from ..training.registry import Registry

    models = Registry(lake_of(args)).models()
    if args.json:
        print(json.dumps(models, default=str, indent=2))
        return 0
    if not models:
        print("no models registered yet: run `flywheel retrain`")
        return 0
    rows = []
    for m in models:
        holdout = [m["metrics"].get(k, {}).get("holdout", {}) for k in ("before", "after")]
        rates = (
            f"{holdout[0]['pass_rate']:.3f} -> {holdout[1]['pass_rate']:.3f}"
            if all(holdout)
            else "-"
        )
        versions = " ".join(f"{t}@{v}" for t, v in m["dataset_versions"].items())
        rows.append(
            [
                m["model_id"],
                m["status"],
                m["method"],
                m["trigger"],
                f"{m['created_at']:%Y-%m-%d %H:%M}",
                rates,
                versions,
            ]
        )
    print(
        format_table(
            ["model", "status", "method", "trigger", "created", "holdout", "dataset versions"],
            rows,
        )
    )
    return 0


def _promote(args: argparse.Namespace) -> int:
    config = {"model_id": args.model_id, "reason": args.reason}
    result = run_job_for_cli(args, "promote_model_job", "promote_registered_model", config)
    _print_changes(result.output_for_node("promote_registered_model"))
    return 0


def _rollback_model(args: argparse.Namespace) -> int:
    config = {"reason": args.reason}
    result = run_job_for_cli(args, "rollback_model_job", "roll_back_promoted_model", config)
    _print_changes(result.output_for_node("roll_back_promoted_model"))
    return 0


def _print_changes(changes: list[tuple[str, str, str]]) -> None:
    for model_id, before, after in changes:
        print(f"{model_id}: {before} -> {after}")
