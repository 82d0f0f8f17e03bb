"""The training core on a real tiny model: the base builder, LoRA training with TRL (SFT, SFT then
DPO, KTO), saving and reloading adapters, and greedy generation. No mocks."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest
from rapidfuzz import fuzz

from flywheel_assets.training.tiny_model import TINY_BASE, build_tiny_base
from flywheel_assets.training.trainer import (
    LoraSettings,
    TrainResult,
    generate,
    load_for_inference,
    train_lora,
)

TOPICS = ("refund", "shipping", "password", "invoice", "account", "delivery")
QA = [
    (f"How do I sort out my {t} issue number {i}?", f"Your {t} request is handled in {i + 2} days.")
    for i, t in enumerate(TOPICS * 5)
]
# Short and distinct, like the golden eval cases the project's gate checks after training.
PAIRS = [
    ("Where is my refund?", "Refunds arrive within five business days."),
    ("How do I reset my password?", "Use the reset link on the login page."),
    ("Can I change my delivery address?", "Yes, edit it under Orders before shipping."),
    ("Do you ship abroad?", "We ship to most countries in Europe."),
    ("How do I cancel my plan?", "Open Billing and choose Cancel plan."),
    ("Where can I download my invoice?", "Invoices are under Account, then Documents."),
]
ALL_LINEAR = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def sft_row(question: str, answer: str) -> dict:
    return {"messages": [*user(question), {"role": "assistant", "content": answer}]}


def digest(path: Path) -> dict[str, tuple[str, int]]:
    return {
        p.name: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(path.iterdir())
    }


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> str:
    return str(build_tiny_base(tmp_path_factory.mktemp("models") / TINY_BASE))


@pytest.fixture(scope="module")
def sft_run(base, tmp_path_factory) -> TrainResult:
    rows = [sft_row(q, a) for q, a in QA]
    rows.append({"messages": [{"role": "narrator", "content": "x"}, *user("hi")]})  # unknown role
    rows.append({"messages": user("no answer follows")})  # nothing to learn
    # A role alias, and tool output in the history, are rendered rather than dropped.
    rows.append(
        {
            "messages": [
                {"role": "bot", "content": "How can I help?"},
                *user("Where is order 7?"),
                {"role": "tool", "content": '{"order": 7, "status": "shipped"}'},
                {"role": "assistant", "content": "Order 7 has shipped."},
            ]
        }
    )
    out = tmp_path_factory.mktemp("adapters") / "sft"
    return train_lora(
        base, out, sft_rows=rows, dpo_rows=None, kto_rows=None, settings=LoraSettings()
    )


def test_tiny_base_builds_once_with_a_trainable_chat_template(base, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(base)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    assert model.config.hidden_size == 64 and model.config.num_hidden_layers == 2
    assert model.config.vocab_size == len(tokenizer)
    assert "{% generation %}" in tokenizer.chat_template
    convo = [{"role": "system", "content": "Be brief."}, *user("Where is my refund?")]
    prompt = tokenizer.apply_chat_template(convo, tokenize=False, add_generation_prompt=True)
    assert prompt.startswith(tokenizer.bos_token) and prompt.endswith("<|assistant|>")
    full = tokenizer.apply_chat_template(
        [*convo, {"role": "assistant", "content": "Soon."}],
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
    )
    # Only the answer and its end-of-turn token carry loss, so the model learns to stop.
    masked = [t for t, m in zip(full["input_ids"], full["assistant_masks"], strict=True) if m]
    assert tokenizer.decode(masked) == "Soon." + tokenizer.eos_token

    before = digest(path)
    assert build_tiny_base(path, seed=7) == path
    assert digest(path) == before
    # Nothing half-built is left beside it, and a foreign non-empty directory is not overwritten.
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a complete model"):
        build_tiny_base(tmp_path / "junk")


def test_sft_lowers_loss_and_saves_a_reloadable_adapter(base, sft_run):
    (stage,) = sft_run.stages
    assert stage["stage"] == "sft" and stage["rows"] == len(QA) + 1 and stage["dropped"] == 2
    assert len(stage["losses"]) == stage["steps"] > 0
    assert stage["last_loss"] < stage["first_loss"] and sft_run.loss_went_down
    out = Path(sft_run.adapter_dir)
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    assert (out / "tokenizer.json").is_file()
    record = json.loads((out / "flywheel_training.json").read_text())
    assert record["method"] == "sft" and record["base_model"] == base
    assert record["settings"]["lora_r"] == 8 and record["stages"][0]["losses"] == stage["losses"]
    # Only the finished adapter is left in the parent: no temp or work directories.
    assert [p.name for p in out.parent.iterdir()] == ["sft"]

    model, tokenizer = load_for_inference(base, sft_run.adapter_dir)
    assert not model.training
    convos = [user(q) for q, _ in QA[:5]]
    replies = generate(model, tokenizer, convos, max_new_tokens=8, batch_size=2)
    assert len(replies) == 5 and all(isinstance(r, str) for r in replies)
    assert generate(model, tokenizer, convos, max_new_tokens=8) == replies  # deterministic


def test_adapter_changes_the_models_output(base, sft_run):
    import torch

    plain, tokenizer = load_for_inference(base, None)
    tuned, _ = load_for_inference(base, sft_run.adapter_dir)
    text = tokenizer.apply_chat_template(
        [sft_row(*QA[0])["messages"][0]], tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        a, b = plain(**ids).logits, tuned(**ids).logits
    assert (a - b).abs().max() > 1e-3


def test_sft_then_dpo_trains_one_adapter_against_the_sft_model(base, tmp_path):
    dpo = [
        # Plain-string and message-list prompts may be mixed: all become conversational.
        {"prompt": q if i % 2 else user(q), "chosen": a, "rejected": "I do not know."}
        for i, (q, a) in enumerate(QA)
    ]
    result = train_lora(
        base,
        tmp_path / "sft_dpo",
        sft_rows=[sft_row(q, a) for q, a in QA],
        dpo_rows=dpo,
        kto_rows=None,
        settings=LoraSettings(method="sft+dpo"),
    )
    assert [s["stage"] for s in result.stages] == ["sft", "dpo"]
    sft, dpo_stage = result.stages
    assert dpo_stage["rows"] == len(QA) and all(s["losses"] for s in result.stages)
    # DPO starts with policy == reference, so its first loss is exactly log 2 only if the
    # reference is the SFT-trained adapter (the bare base would give another value).
    assert dpo_stage["first_loss"] == pytest.approx(math.log(2), abs=1e-4)
    assert result.loss_went_down
    out = tmp_path / "sft_dpo"
    assert not (out / "ref").exists()  # TRL's frozen reference copy is not saved
    model, tokenizer = load_for_inference(base, str(out))
    assert len(generate(model, tokenizer, [user(QA[0][0])], max_new_tokens=4)) == 1


def test_kto_trains_on_desirable_and_undesirable_rows(base, tmp_path):
    kto = [{"prompt": user(q), "completion": a, "label": True} for q, a in QA[:15]]
    kto += [{"prompt": q, "completion": "no idea", "label": False} for q, _ in QA[15:]]
    result = train_lora(
        base,
        tmp_path / "kto",
        sft_rows=None,
        dpo_rows=None,
        kto_rows=kto,
        settings=LoraSettings(method="kto"),
    )
    (stage,) = result.stages
    assert stage["stage"] == "kto" and stage["rows"] == 30 and stage["steps"] > 0
    assert len(stage["losses"]) == stage["steps"] and result.loss_went_down
    assert (tmp_path / "kto" / "adapter_model.safetensors").is_file()


def test_overfit_tiny_model_reproduces_its_training_answers(base, tmp_path):
    # What the eval gate needs from the tiny model: after training on the golden answers, greedy
    # generation gives them back. LoRA on the attention only is too weak for a random base; on
    # every linear layer, 30 epochs at lr 1e-2 reproduce all six exactly in about a second.
    settings = LoraSettings(
        epochs=30,
        learning_rate=1e-2,
        batch_size=6,
        lora_r=16,
        lora_alpha=32,
        target_modules=ALL_LINEAR,
    )
    result = train_lora(
        base,
        tmp_path / "overfit",
        sft_rows=[sft_row(q, a) for q, a in PAIRS],
        dpo_rows=None,
        kto_rows=None,
        settings=settings,
    )
    assert result.loss_went_down
    model, tokenizer = load_for_inference(base, result.adapter_dir)
    replies = generate(model, tokenizer, [user(q) for q, _ in PAIRS])
    scores = [fuzz.ratio(r, a) / 100 for r, (_, a) in zip(replies, PAIRS, strict=True)]
    assert sum(s >= 0.8 for s in scores) >= 5, list(zip(replies, scores, strict=True))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "ppo"}, "unknown training method 'ppo'"),
        ({"epochs": 0}, "epochs must be positive"),
        ({"learning_rate": -1.0}, "learning_rate must be positive"),
        ({"device": "tpu"}, "unknown device 'tpu'"),
        ({"lora_dropout": 1.0}, "lora_dropout"),
        ({"method": "kto", "batch_size": 1}, "KTO needs batch_size >= 2"),
    ],
)
def test_bad_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LoraSettings(**kwargs)


def test_missing_or_unusable_rows_are_refused_before_training(base, tmp_path):
    def train(method, sft=None, dpo=None, kto=None):
        return train_lora(
            base,
            tmp_path / "out",
            sft_rows=sft,
            dpo_rows=dpo,
            kto_rows=kto,
            settings=LoraSettings(method=method),
        )

    with pytest.raises(ValueError, match="missing or empty: sft_rows"):
        train("sft", sft=[])
    with pytest.raises(ValueError, match="needs sft_rows and dpo_rows; missing or empty: dpo_rows"):
        train("sft+dpo", sft=[sft_row(*QA[0])])
    with pytest.raises(ValueError, match="none of the 1 sft_rows"):
        train("sft", sft=[{"messages": user("no answer")}])
    only_good = [{"prompt": q, "completion": a, "label": True} for q, a in QA[:4]]
    with pytest.raises(ValueError, match="KTO needs both desirable .* got only desirable"):
        train("kto", kto=only_good)
    # A refused run leaves nothing behind.
    assert list(tmp_path.iterdir()) == []
