"""Builds the default base model: a tiny random-init Llama with a byte-level tokenizer whose merges
are learned from a fixed English text shipped here, never from users' rows.

It needs no model hub, so training runs offline and in tests; it learns only what it is trained on.
A model store outlives erasure (weights cannot forget a row), so nothing of a user may sit in the
base model's files: its vocabulary is the same for every store and covers any text byte by byte.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "CHAT_TEMPLATE",
    "SPECIAL_TOKENS",
    "TINY_BASE",
    "build_tiny_base",
    "build_whole",
    "is_complete_model",
]

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

# The tokenizer's merges are learned from this text alone: common English an assistant writes.
TOKENIZER_TEXT = """
Hello! How can I help you today? Thank you for your question. Here is what I found.
I am sorry, I do not know the answer to that, but I can try to help in another way.
Yes, you can do that. No, that is not possible right now. Please try again later.
The order was shipped on Monday and should arrive within two to five business days.
You can reset your password from the account settings page, then sign in again.
To change the plan, open billing, choose a new plan and confirm the payment method.
What is the capital of France? The capital of France is Paris. It is a large city.
Could you tell me more about the problem? What did you expect, and what happened?
This is a short summary of the main points, with an example and the next steps.
First, install the package. Second, run the command. Third, check the output file.
The function returns a list of numbers, sorted from the smallest to the largest one.
Please note that the service will be unavailable during maintenance on Sunday night.
Our team will review your request and reply by email as soon as we can. Thanks!
There are three options: keep the current settings, update them, or start over.
The weather will be sunny in the morning, with some rain in the afternoon and evening.
It takes about ten minutes to cook the pasta; add salt to the water before it boils.
A refund is issued to the original payment method within seven days of the return.
The report shows that sales grew by twelve percent this year compared with last year.
system user assistant tool question answer because however therefore example number
one two three four five six seven eight nine ten hundred thousand first last next
time day week month year today tomorrow yesterday morning evening night hour minute
good great better best bad worse small large new old long short high low right left
Where is my order? Your order is on its way; you can track the delivery in your account.
How do I change my delivery address? Edit the address under Orders before the order ships.
Do you ship abroad? We ship to most countries in Europe, America, Asia and Africa.
Where can I download my invoice? Invoices and receipts are under Account, then Documents.
How do I cancel my subscription? Open Billing, choose the plan and select Cancel plan.
Refunds arrive within five business days after we receive the returned item.
Use the reset link on the login page to choose a new password for your account.
Can I upgrade or downgrade my plan? Yes, the change applies from the next billing period.
Contact support by chat or phone; we answer every message within one working day.
Your request is being handled. The issue was fixed in the latest update of the app.
The file is too large to upload. Compress it or split it into smaller parts first.
Open the menu, select Settings, then Notifications, and turn the email alerts on or off.
We could not process the payment. Check the card number, the expiry date and the code.
The product is out of stock; we will let you know when it is available again.
Sign up with your email address, confirm the link we send, and set up your profile.
""".strip()

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
    return build_whole(target, lambda tmp: _build_into(tmp, seed, vocab_size, hidden_size, layers))


def build_whole(target: Path, build: Callable[[Path], None]) -> Path:
    """Run `build` into a temporary directory beside `target` and rename it into place, so a crash
    leaves either nothing or a complete model. An empty or incomplete `target` is replaced; one
    another builder completed first is kept (the same inputs give the same model)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.building-", dir=target.parent))
    try:
        build(tmp)
        if target.exists():
            shutil.rmtree(target)  # empty or incomplete, checked by the caller
        try:
            os.rename(tmp, target)
        except OSError:
            # Another builder finished first; its model is as good as ours and may be in use.
            if not is_complete_model(target):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _build_into(out: Path, seed: int, vocab_size: int, hidden_size: int, layers: int) -> None:
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

    # Every byte is in the initial alphabet, so text the fixed corpus lacks still tokenizes.
    corpus = TOKENIZER_TEXT.splitlines()
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
