"""LoRA fine-tuning of a causal LM on the curated sets with TRL (SFT, DPO, SFT then DPO, KTO), and
greedy generation with the result. Plain Python, no Dagster: assets and the CLI call it."""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .progress import on_terminal

# Training must never reach for the network: a missing file should fail at once, not hang on a
# hub lookup. setdefault keeps a deliberate setting of the caller's.
for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_var, "1")

__all__ = [
    "METHODS",
    "LoraSettings",
    "TrainResult",
    "generate",
    "load_for_inference",
    "quiet_progress",
    "train_lora",
]

METHODS = ("sft", "dpo", "sft+dpo", "kto")
DEVICES = ("auto", "cpu", "cuda")
# The rows each method trains on, in stage order.
STAGES = {"sft": ("sft",), "dpo": ("dpo",), "sft+dpo": ("sft", "dpo"), "kto": ("kto",)}
TRAINING_FILE = "flywheel_training.json"
# Below this many parameters a model runs on one CPU thread: a tiny model gains nothing from more,
# and two processes each spinning two OpenMP threads on a 2-core machine ran 5-50x slower.
SMALL_MODEL_PARAMS = 10_000_000

ROLES = frozenset({"system", "user", "assistant", "tool"})
# Role names other chat formats use for the same speakers.
ROLE_ALIASES = {
    "human": "user",
    "bot": "assistant",
    "model": "assistant",
    "gpt": "assistant",
    "ai": "assistant",
    "developer": "system",
    "function": "tool",
    "ipython": "tool",
}


@dataclass(frozen=True)
class LoraSettings:
    """How to fine-tune: the method, the optimisation and the LoRA adapter's shape."""

    method: str = "sft"
    epochs: float = 2.0
    # Higher than the usual 2e-4: the adapter on the tiny random base must learn everything.
    learning_rate: float = 1e-3
    batch_size: int = 8
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    # LoRA on the last N transformer blocks only (0: every block). Gradients then flow through
    # those blocks alone, which is most of what a CPU step costs.
    top_layers: int = 0
    max_length: int = 256
    beta: float = 0.1
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        # Config often arrives as JSON lists; a tuple keeps the settings hashable.
        object.__setattr__(self, "target_modules", tuple(self.target_modules))
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first setting that cannot train."""
        if self.method not in METHODS:
            raise ValueError(f"unknown training method {self.method!r}; expected one of {METHODS}")
        if self.device not in DEVICES:
            raise ValueError(f"unknown device {self.device!r}; expected one of {DEVICES}")
        for name in ("epochs", "learning_rate", "batch_size", "lora_r", "lora_alpha", "max_length"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
        if self.top_layers < 0:
            raise ValueError(f"top_layers must be 0 (every block) or more, got {self.top_layers}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout!r}")
        if not self.beta > 0:
            raise ValueError(f"beta must be positive, got {self.beta!r}")
        if not self.target_modules or not all(isinstance(m, str) for m in self.target_modules):
            raise ValueError("target_modules must name at least one module")
        if self.method == "kto" and self.batch_size < 2:
            # KTO estimates its KL term from mismatched pairs inside a batch.
            raise ValueError(f"KTO needs batch_size >= 2, got {self.batch_size}")


@dataclass
class TrainResult:
    """Where the adapter went and how each training stage went."""

    adapter_dir: str
    method: str
    stages: list[dict[str, Any]] = field(default_factory=list)
    device: str = "cpu"

    @property
    def loss_went_down(self) -> bool:
        """True when every stage ended with a lower loss than it started with."""
        return bool(self.stages) and all(
            s["last_loss"] is not None and s["last_loss"] < s["first_loss"] for s in self.stages
        )


def train_lora(
    base_model: str,
    out_dir: str | Path,
    *,
    sft_rows: list[dict] | None,
    dpo_rows: list[dict] | None,
    kto_rows: list[dict] | None,
    settings: LoraSettings,
) -> TrainResult:
    """Train a LoRA adapter on `base_model` (a hub id or a local path) and save it to `out_dir`.

    Rows are TRL's formats: SFT `{"messages": [...]}` ending with the assistant turn; DPO
    `{"prompt", "chosen", "rejected"}` and KTO `{"prompt", "completion", "label"}`, where the
    prompt is a message list or a plain string (one user turn) and answers are strings or one
    assistant turn. Rows the chat template cannot render are dropped and counted per stage.
    "sft+dpo" trains one adapter: SFT, then DPO against the SFT model as reference.

    `out_dir` gets the adapter, the tokenizer and `flywheel_training.json`; it is written whole
    or not at all.
    """
    settings.validate()
    given = {"sft": sft_rows, "dpo": dpo_rows, "kto": kto_rows}
    needed = STAGES[settings.method]
    missing = [f"{name}_rows" for name in needed if not given[name]]
    if missing:
        raise ValueError(
            f"method {settings.method!r} needs {' and '.join(f'{n}_rows' for n in needed)}; "
            f"missing or empty: {', '.join(missing)}"
        )
    device = _resolve_device(settings.device)
    with quiet_progress():
        model, tokenizer = _load_base(base_model)
        # Normalise every stage's rows before any training, so bad input fails in seconds.
        prepared = {name: _prepare(name, given[name] or [], tokenizer, settings) for name in needed}
        return _train(base_model, Path(out_dir), model, tokenizer, prepared, settings, device)


def load_for_inference(
    base_model: str, adapter_dir: str | Path | None, *, device: str = "auto"
) -> tuple[Any, Any]:
    """The base model, with the adapter from `adapter_dir` applied unless it is None, in eval mode,
    and its tokenizer (the adapter's copy when saved with it)."""
    from transformers import AutoTokenizer

    with quiet_progress():
        model, tokenizer = _load_base(base_model)
        if adapter_dir is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(adapter_dir))
            if (Path(adapter_dir) / "tokenizer_config.json").is_file():
                tokenizer = AutoTokenizer.from_pretrained(str(adapter_dir))
    model.to(_resolve_device(device))
    model.eval()
    return model, tokenizer


def generate(
    model: Any,
    tokenizer: Any,
    conversations: list[list[dict]],
    *,
    max_new_tokens: int = 48,
    batch_size: int = 16,
) -> list[str]:
    """Greedy replies to each conversation (the model's next assistant turn), stripped."""
    import torch

    config = _greedy_config(model, tokenizer, max_new_tokens)
    # Long prompts keep their end, which is what the reply answers.
    limit = getattr(model.config, "max_position_embeddings", None)
    max_prompt = limit - max_new_tokens if limit and limit > max_new_tokens else None
    side, trunc = tokenizer.padding_side, tokenizer.truncation_side
    # Left padding keeps every prompt's last token next to the generated ones.
    tokenizer.padding_side, tokenizer.truncation_side = "left", "left"
    replies: list[str] = []
    try:
        with _cpu_threads(model, model.device.type), torch.inference_mode():
            for start in range(0, len(conversations), batch_size):
                texts = [
                    tokenizer.apply_chat_template(
                        _clean_messages(conv) or conv, tokenize=False, add_generation_prompt=True
                    )
                    for conv in conversations[start : start + batch_size]
                ]
                # The template already wrote bos and role markers; adding them would double them.
                enc = tokenizer(
                    texts,
                    return_tensors="pt",
                    padding=True,
                    add_special_tokens=False,
                    truncation=max_prompt is not None,
                    max_length=max_prompt,
                ).to(model.device)
                out = model.generate(**enc, generation_config=config)
                new = out[:, enc["input_ids"].shape[1] :]
                replies.extend(
                    t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)
                )
    finally:
        tokenizer.padding_side, tokenizer.truncation_side = side, trunc
    return replies


@contextmanager
def quiet_progress() -> Iterator[None]:
    """Silence the progress bars and deprecation chatter of datasets and transformers meanwhile.

    A run's log should show what was trained, not dozens of one-line progress bars per stage.
    """
    import datasets
    from transformers.utils import logging as hf_logging

    ds_on, hf_on = datasets.is_progress_bar_enabled(), hf_logging.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            # TRL 1.16 still calls the renamed is_gradient_checkpointing; nothing for us to change.
            warnings.filterwarnings("ignore", ".*is_gradient_checkpointing.*", FutureWarning)
            yield
    finally:
        if ds_on:
            datasets.enable_progress_bars()
        if hf_on:
            hf_logging.enable_progress_bar()


# --- internals -----------------------------------------------------------------------------------


@contextmanager
def _cpu_threads(model: Any, device: str) -> Iterator[None]:
    import torch

    small = sum(p.numel() for p in model.parameters()) < SMALL_MODEL_PARAMS
    if device != "cpu" or not small:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train(base_model, out, model, tokenizer, prepared, settings, device) -> TrainResult:
    """Run the stages in order on one adapter, then move the finished adapter into `out`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.training-", dir=out.parent))
    try:
        stages = []
        with _cpu_threads(model, device):
            for name, (rows, dropped) in prepared.items():
                model, stage = _run_stage(
                    name, model, tokenizer, rows, settings, device, tmp / "_work"
                )
                stage["dropped"] = dropped
                stages.append(stage)
        shutil.rmtree(tmp / "_work", ignore_errors=True)
        # DPO adds a frozen "ref" copy of the adapter; only the trained one is the result.
        model.save_pretrained(tmp, selected_adapters=["default"])
        tokenizer.save_pretrained(tmp)
        result = TrainResult(str(out), settings.method, stages, device)
        record = {
            "method": settings.method,
            "base_model": base_model,
            "settings": asdict(settings),
            "device": device,
            "stages": stages,
        }
        (tmp / TRAINING_FILE).write_text(json.dumps(record, indent=2) + "\n")
        _replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def _resolve_device(device: str) -> str:
    import torch

    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; expected one of {DEVICES}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA device is available")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _load_base(base_model: str) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if not tokenizer.chat_template:
        raise ValueError(
            f"the tokenizer of {base_model!r} has no chat template, which conversations need"
        )
    # float32 weights: mixed precision, when used, comes from the trainer's autocast.
    model = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32)
    return model, tokenizer


def _clean_messages(messages: Any) -> list[dict] | None:
    """Messages with known roles and string content, or None when a turn cannot be used."""
    if not isinstance(messages, list | tuple) or not messages:
        return None
    out = []
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            return None
        role = str(m.get("role", "")).strip().lower()
        role = ROLE_ALIASES.get(role, role)
        if role not in ROLES:
            return None
        out.append({"role": role, "content": m["content"]})
    return out


def _as_prompt(prompt: Any) -> list[dict] | None:
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}] if prompt.strip() else None
    return _clean_messages(prompt)


def _as_answer(answer: Any) -> list[dict] | None:
    """An answer as the one assistant turn TRL's conversational format expects."""
    if isinstance(answer, str):
        return [{"role": "assistant", "content": answer}] if answer.strip() else None
    msgs = _clean_messages(answer)
    if msgs is None or len(msgs) != 1 or msgs[0]["role"] != "assistant":
        return None
    return msgs


def _renders(tokenizer: Any, messages: list[dict]) -> bool:
    from jinja2 import TemplateError

    try:
        tokenizer.apply_chat_template(messages, tokenize=False)
    except (TemplateError, ValueError, TypeError):
        return False
    return True


def _prepare(name: str, rows: list[dict], tokenizer: Any, settings: LoraSettings):
    """(TRL rows, dropped count) for one stage; ValueError when nothing usable is left."""
    out: list[dict] = []
    for row in rows:
        row = row if isinstance(row, dict) else {}
        if name == "sft":
            msgs = _clean_messages(row.get("messages"))
            ok = (
                msgs is not None
                and msgs[-1]["role"] == "assistant"
                and bool(msgs[-1]["content"].strip())
                and _renders(tokenizer, msgs)
            )
            if ok:
                out.append({"messages": msgs})
        elif name == "dpo":
            prompt = _as_prompt(row.get("prompt"))
            chosen, rejected = _as_answer(row.get("chosen")), _as_answer(row.get("rejected"))
            if prompt and chosen and rejected and _renders(tokenizer, prompt + chosen):
                out.append({"prompt": prompt, "chosen": chosen, "rejected": rejected})
        else:
            prompt, completion = _as_prompt(row.get("prompt")), _as_answer(row.get("completion"))
            label = row.get("label")
            if prompt and completion and isinstance(label, bool) and _renders(tokenizer, prompt):
                out.append({"prompt": prompt, "completion": completion, "label": label})
    if not out:
        raise ValueError(f"none of the {len(rows)} {name}_rows can be rendered for training")
    if name == "kto":
        labels = {r["label"] for r in out}
        if labels != {True, False}:
            have = "desirable" if True in labels else "undesirable"
            raise ValueError(
                f"KTO needs both desirable (label=True) and undesirable (label=False) kto_rows; "
                f"got only {have} ones"
            )
        # KTO reads batches in order (its KL term pairs neighbours), so mix the labels up front.
        random.Random(settings.seed).shuffle(out)
    return out, len(rows) - len(out)


def _lora_config(settings: LoraSettings, model: Any):
    from peft import LoraConfig

    blocks = int(getattr(model.config, "num_hidden_layers", 0) or 0)
    layers = None
    if settings.top_layers and blocks:
        layers = list(range(max(0, blocks - settings.top_layers), blocks))
    return LoraConfig(
        layers_to_transform=layers,
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=list(settings.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )


def _run_stage(name, model, tokenizer, rows, settings, device, work_dir):
    """Train one stage; returns the (now PEFT) model and the stage's record."""
    from datasets import Dataset
    from peft import PeftModel
    from transformers import PrinterCallback, set_seed

    config_cls, trainer_cls, extra = _stage_classes(name, settings)
    args = config_cls(**_common_args(settings, device, work_dir / name), **extra)
    set_seed(settings.seed)
    # A model already carrying the adapter (SFT before DPO) keeps training that same adapter.
    peft_config = None if isinstance(model, PeftModel) else _lora_config(settings, model)
    trainer = trainer_cls(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    # The printer echoes every step's metrics to stdout; the record below keeps them instead.
    trainer.remove_callback(PrinterCallback)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    losses = [float(e["loss"]) for e in trainer.state.log_history if "loss" in e]
    stage = {
        "stage": name,
        "rows": len(rows),
        "steps": int(trainer.state.global_step),
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "losses": losses,
        "seconds": round(seconds, 3),
    }
    return trainer.model, stage


def _stage_classes(name: str, settings: LoraSettings) -> tuple[type, Callable, dict]:
    if name == "sft":
        from trl import SFTConfig, SFTTrainer

        # Loss on the assistant turns only: the prompts are the users' words, not a target.
        # Batches of similar length: padding is wasted work, and a CPU feels every token.
        extra = {"assistant_only_loss": True, "packing": False}
        return SFTConfig, SFTTrainer, extra | {"train_sampling_strategy": "group_by_length"}
    if name == "dpo":
        from trl import DPOConfig, DPOTrainer

        return DPOConfig, DPOTrainer, {"beta": settings.beta}
    from trl import KTOConfig, KTOTrainer

    return KTOConfig, KTOTrainer, {"beta": settings.beta}


def _common_args(settings: LoraSettings, device: str, work_dir: Path) -> dict:
    import torch

    cuda = device == "cuda"
    return {
        "output_dir": str(work_dir),
        "num_train_epochs": settings.epochs,
        "learning_rate": settings.learning_rate,
        "per_device_train_batch_size": settings.batch_size,
        "max_length": settings.max_length,
        "seed": settings.seed,
        "data_seed": settings.seed,
        # Every step's loss is the record of the run; checkpoints would only be deleted again.
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        # A bar per stage on a terminal; a log gets the stage's summary line instead.
        "disable_tqdm": not on_terminal(),
        "dataloader_num_workers": 0,
        "dataloader_pin_memory": cuda,
        # TRL defaults to bf16 and gradient checkpointing; on CPU both only slow a small model down.
        "use_cpu": not cuda,
        "bf16": cuda and torch.cuda.is_bf16_supported(),
        "fp16": False,
        # transformers 5 renamed gradient_checkpointing; setting the new name avoids its warning.
        "activation_checkpointing": False,
    }


def _greedy_config(model: Any, tokenizer: Any, max_new_tokens: int):
    import copy

    config = copy.deepcopy(model.generation_config)
    # A hub model's sampling defaults would only produce warnings next to do_sample=False.
    config.do_sample = False
    config.temperature = config.top_p = config.top_k = None
    config.num_beams = 1
    config.max_new_tokens = max_new_tokens
    config.max_length = None
    config.pad_token_id = tokenizer.pad_token_id
    if config.eos_token_id is None:
        config.eos_token_id = tokenizer.eos_token_id
    return config


def _replace_dir(src: Path, dst: Path) -> None:
    """Move the finished `src` to `dst`, replacing an older `dst` only once `src` is complete."""
    if not dst.exists():
        os.rename(src, dst)
        return
    old = dst.with_name(f".{dst.name}.old-{os.getpid()}-{time.time_ns()}")
    os.rename(dst, old)
    os.rename(src, dst)
    shutil.rmtree(old, ignore_errors=True)
