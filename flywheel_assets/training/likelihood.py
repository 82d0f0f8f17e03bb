"""Teacher-forced log-likelihood of given answers under a causal LM: how likely the model finds
an eval case's expected answer (and the answer it should not prefer) after the conversation.

One forward pass per batch, no generation, so a CPU can score every case of a snapshot. The
language-model head runs only on answer positions: the full-vocabulary logits of every position
would be most of the memory and time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["AnswerScore", "answer_logprobs"]


@dataclass(frozen=True)
class AnswerScore:
    """The summed log-probability of an answer's tokens and how many there were."""

    logprob: float
    tokens: int

    @property
    def mean(self) -> float:
        """Per-token log-probability: comparable across answers of different lengths."""
        return self.logprob / self.tokens if self.tokens else float("-inf")


def answer_logprobs(
    model: Any,
    tokenizer: Any,
    conversations: Sequence[list[dict]],
    answers: Sequence[str],
    *,
    max_length: int = 384,
    batch_size: int = 8,
    progress: Callable[[int], None] | None = None,
) -> list[AnswerScore]:
    """The log-probability of each answer as the assistant's next turn after its conversation.

    The answer is scored with the end-of-turn token the chat template closes it with, so an answer
    that should have gone on scores lower than one that ends where it should. Long prompts keep
    their end; answers longer than `max_length` are cut (their first tokens are what is scored).
    `progress` is called with the number of answers scored after each batch.
    """
    if len(conversations) != len(answers):
        raise ValueError(f"{len(conversations)} conversations for {len(answers)} answers")
    import torch

    encoded = [
        _encode(tokenizer, conv, answer, max_length)
        for conv, answer in zip(conversations, answers, strict=True)
    ]
    # Similar lengths batch together: padding is wasted work.
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i][0]))
    scores: list[AnswerScore | None] = [None] * len(encoded)
    body, head = _body_and_head(model)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            width = max(len(encoded[i][0]) for i in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, i in enumerate(chunk):
                tokens = encoded[i][0]
                ids[row, : len(tokens)] = torch.tensor(tokens)
                mask[row, : len(tokens)] = 1
            hidden = body(input_ids=ids.to(device), attention_mask=mask.to(device))[0]
            for row, i in enumerate(chunk):
                tokens, answer_start = encoded[i]
                n = len(tokens) - answer_start
                if n <= 0:
                    scores[i] = AnswerScore(0.0, 0)
                    continue
                # Position p predicts token p + 1.
                states = hidden[row, answer_start - 1 : len(tokens) - 1]
                logits = head(states).float()
                target = torch.tensor(tokens[answer_start:], device=logits.device)
                picked = torch.log_softmax(logits, dim=-1).gather(1, target[:, None])
                scores[i] = AnswerScore(float(picked.sum()), n)
            if progress is not None:
                progress(len(chunk))
    return [s for s in scores if s is not None]


def _encode(tokenizer: Any, conversation: list[dict], answer: str, max_length: int):
    """(prompt + answer token ids, where the answer starts), the prompt cut from the left."""
    prompt = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    whole = tokenizer.apply_chat_template(
        [*conversation, {"role": "assistant", "content": answer}], tokenize=False
    )
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    if whole.startswith(prompt):
        answer_ids = tokenizer(whole[len(prompt) :], add_special_tokens=False)["input_ids"]
    else:  # a template that renders the last turn differently: score the bare answer
        answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    answer_ids = _through_end_of_turn(answer_ids, tokenizer)[: max(1, max_length - 1)]
    room = max(1, max_length - len(answer_ids))
    prompt_ids = prompt_ids[-room:]
    return prompt_ids + answer_ids, len(prompt_ids)


def _through_end_of_turn(ids: list[int], tokenizer: Any) -> list[int]:
    """The answer's tokens up to and including the first end-of-turn token: what follows it
    (a newline some templates add) is not the model's to predict."""
    eos = tokenizer.eos_token_id
    ends = {eos} if isinstance(eos, int) else set(eos or [])
    for i, token in enumerate(ids):
        if token in ends:
            return ids[: i + 1]
    return ids


def _body_and_head(model: Any):
    """The transformer body (hidden states) and the language-model head of a causal LM, through
    any peft wrapper (the adapter's layers live inside the body, so they still apply)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    head = inner.get_output_embeddings()
    body = getattr(inner, inner.base_model_prefix, None)
    if body is None or head is None:
        raise ValueError(f"{type(inner).__name__} exposes no transformer body and head to score")
    return body, head
