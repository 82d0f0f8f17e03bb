"""Builds the default base model: a tiny random-init Llama with a tokenizer trained on our own text.

It needs no model hub, so training runs offline and in tests; it learns only what it is trained on.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

__all__ = ["CHAT_TEMPLATE", "SPECIAL_TOKENS", "TINY_BASE", "build_tiny_base", "is_complete_model"]

# The `base_model` config value that means "build (or reuse) the tiny model".
TINY_BASE = "tiny"

PAD, BOS, EOS = "<|pad|>", "<|bos|>", "<|eos|>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>", "<|tool|>")
SPECIAL_TOKENS = (PAD, BOS, EOS, *ROLE_TOKENS)

# Every turn is `<|role|>content<|eos|>`: turns start and end on special tokens, so a prompt
# rendered alone always tokenizes as a prefix of prompt + answer (TRL's DPO/KTO rely on that).
# The assistant's `<|eos|>` sits inside the generation markers, so assistant-only loss teaches
# the model to stop, and generation halts on the tokenizer's eos.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant', 'tool'] %}"
    "{{ raise_exception('unknown role: ' + message['role']) }}"
    "{% endif %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|assistant|>' }}"
    "{% generation %}{{ message['content'] }}{{ eos_token }}{% endgeneration %}"
    "{% else %}"
    "{{ '<|' + message['role'] + '|>' }}{{ message['content'] }}{{ eos_token }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)

# Files whose presence means a finished build (the build renames a complete directory into place).
_REQUIRED = ("config.json", "tokenizer.json", "tokenizer_config.json")
_WEIGHTS = ("model.safetensors", "pytorch_model.bin")


def is_complete_model(path: str | Path) -> bool:
    """True when `path` holds a config, a tokenizer and weights."""
    p = Path(path)
    return all((p / name).is_file() for name in _REQUIRED) and any(
        (p / name).is_file() for name in _WEIGHTS
    )


def build_tiny_base(
    path: str | Path,
    texts: Iterable[str],
    *,
    seed: int = 0,
    vocab_size: int = 1024,
    hidden_size: int = 64,
    layers: int = 2,
) -> Path:
    """Build the tiny base model and its tokenizer at `path`, or return `path` if already built.

    An existing model is never rebuilt: adapters trained on it are only valid for those exact
    weights and token ids. The build happens in a temporary directory beside `path` and is renamed
    into place, so a crash leaves either nothing or a complete model.
    """
    target = Path(path)
    if is_complete_model(target):
        return target
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ValueError(
            f"{target} exists but is not a complete model (needs {', '.join(_REQUIRED)} and "
            f"weights); remove it or choose another path"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.building-", dir=target.parent))
    try:
        _build_into(tmp, list(texts), seed, vocab_size, hidden_size, layers)
        if target.exists():
            target.rmdir()  # empty, checked above; rename cannot replace a directory otherwise
        try:
            os.rename(tmp, target)
        except OSError:
            # Another builder finished first; its model is as good as ours and may be in use.
            if not is_complete_model(target):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _build_into(
    out: Path, texts: list[str], seed: int, vocab_size: int, hidden_size: int, layers: int
) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        GenerationConfig,
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,
    )

    # Importing trainer also turns the hub off before transformers is used.
    from .trainer import quiet_progress

    # A role name or template text the corpus lacks should still tokenize into real merges.
    corpus = [t for t in texts if t] + ["system user assistant tool", "Hello! How can I help?"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=list(SPECIAL_TOKENS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        additional_special_tokens=list(ROLE_TOKENS),
        model_max_length=512,
    )
    tokenizer.chat_template = CHAT_TEMPLATE

    heads = max(1, hidden_size // 16)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with quiet_progress():
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
