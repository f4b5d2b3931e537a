"""Multi-turn rollout speed: the KV cache kept across turns vs re-encoding the conversation at every turn.

Usage::

    python benchmarks/multiturn_throughput.py                                # tiny-llama, CPU
    python benchmarks/multiturn_throughput.py --model smollm2-135m-instruct

Both sides run the same policy, batch, conversation and number of generated
tokens: ``--turns`` agent turns of exactly ``--turn-tokens`` tokens each (the
end-of-turn id is one the model never samples here, so every turn runs to its
token limit), with a scripted user whose reply is the same ~50-token text
every turn.

* **textgym** (token-in/token-out): :class:`MultiTurnRolloutCollector` on a
  :class:`textgym.MultiTurnVectorEnv`: the prompt is prefilled once, each
  agent token is one cached forward, and each reply's tokens are fed as one
  incremental block against the same cache.  Timed: generation only (the
  scoring pass, which the other side has no counterpart of, is subtracted).
* **re-encode per turn** (what text-in/text-out trainers do): before every
  turn the conversation so far is rendered to text with the chat template,
  tokenized and prefilled from scratch; the turn is then decoded with the
  cache of that prefill.  The same policy calls (``prefill`` / ``decode_step``)
  and the same per-token work (sampling, the sampled token's logprob).

Output: agent tokens per second of each side and their ratio (target >= 3x at
4 turns on SmolLM2: the cache makes a turn cost its own tokens).  Best of
``--repeats`` after a warm-up.  The table also counts the token positions each
side runs through the model per row (prefills + decoded tokens): the work
ratio is the ceiling of the time ratio, reached when prefill dominates.  With
turns of equal length from a short prompt, turn k prefills about k turns, so at
4 turns the re-encoding side does at most (1+2+3+4)/4 = 2.5x the work; a long
first message (a tool manual, a system prompt, a document: ``--context-words``)
raises the ceiling towards the number of turns.
"""

from __future__ import annotations

import argparse
import re

import numpy as np
import torch
from _common import Table, machine_info, parse_bench_args, time_scoring, timed_runs

from textgym import MultiTurnVectorEnv
from textgym.agents import LMActorCritic, MultiTurnRolloutCollector, SamplingParams
from textgym.agents.common.sampling import logprobs_of, process_logits, sample_tokens
from textgym.responders import Reply, Responder

PROMPT = ("I am planning a small vegetable garden on a balcony that gets about five hours of sun. "
          "Which vegetables should I grow, how should I arrange the pots, and how often should I water them?")
#: filler for ``--context-words``: a long first message, as a tool manual or a document would be
MANUAL = ("The calculator tool takes one arithmetic expression with integers, parentheses and the four operators "
          "and returns its value, or an error line when the expression cannot be parsed. ")
REPLY = ("Thanks. That helps, but I still have questions: what about the soil, which pots are best for a windy "
         "balcony, and is there anything I should plant together or keep apart? Please be specific.")


class ScriptedUser(Responder):
    """The same reply every turn; never ends the conversation (the turn limit does)."""

    name = "scripted-user"

    def respond(self, states, conversations):
        return [Reply(text=REPLY) for _ in states]


def make_env(tok, prompt: str, batch: int, turns: int, turn_tokens: int, vocab: int) -> MultiTurnVectorEnv:
    never = vocab - 1  # an id the model does not sample in practice: every turn runs to turn_tokens
    return MultiTurnVectorEnv(tok, [{"prompt": prompt}], ScriptedUser(), batch, autoreset_mode="Disabled",
                              max_prompt_length=len(tok(prompt)["input_ids"]) + 64, max_new_tokens=turns * (turn_tokens + 80), max_turns=turns,
                              max_turn_tokens=turn_tokens, end_of_turn_ids=[never], vocab_size=vocab)  # fmt: skip


def time_textgym(policy, env, sp, repeats: int) -> float:
    """Best generation seconds of a full conversation batch (scoring pass subtracted)."""
    col = MultiTurnRolloutCollector(policy, env, sp, seed=0)
    spent = time_scoring(col)
    best = float("inf")
    for seconds, batch in timed_runs(lambda: col.collect(seed=0), repeats, policy.device):
        best = min(best, seconds - spent["score"])
    assert int(batch.mask.sum(-1).min()) == env.conv.max_turns * env.conv.max_turn_tokens, batch.mask.sum(-1)
    return best


@torch.no_grad()
def reencode_rollout(policy, tok, prompt: str, batch: int, turns: int, turn_tokens: int, sp, generator,
                     positions: list[int] | None = None) -> int:
    """One text-in/text-out conversation batch; returns the agent tokens generated.

    ``positions`` (if given) gets one entry per turn: the prefill length (row 0's real tokens)."""
    dev, never = policy.device, policy.action_size - 1
    conversations = [[{"role": "user", "content": prompt}] for _ in range(batch)]
    generated = 0
    for _ in range(turns):
        texts = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
        side, tok.padding_side = tok.padding_side, "left"
        enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        tok.padding_side = side
        ids, mask = enc["input_ids"].to(dev), enc["attention_mask"].to(dev)
        if positions is not None:
            positions.append(int(mask[0].sum()))
        out = policy.prefill(ids, mask)
        turn, logps = [], []
        for _ in range(turn_tokens):
            logits = out.logits.clone()
            logits[:, never] = float("-inf")
            processed = process_logits(logits, sp)
            token = sample_tokens(processed, generator, sp.greedy)
            logps.append(logprobs_of(processed, token).cpu())  # as the textgym rollout records them
            turn.append(token.cpu())
            mask = torch.cat([mask, torch.ones(batch, 1, dtype=mask.dtype, device=dev)], dim=1)
            out = policy.decode_step(token, mask, out.cache)
        generated += batch * turn_tokens
        answers = tok.batch_decode(torch.stack(turn, 1), skip_special_tokens=True)
        for c, a in zip(conversations, answers):
            c += [{"role": "assistant", "content": a}, {"role": "user", "content": REPLY}]
    return generated


def time_reencode(policy, tok, prompt, batch, turns, turn_tokens, sp, repeats: int) -> float:
    gen = torch.Generator(device=policy.device).manual_seed(0)
    runs = list(timed_runs(lambda: reencode_rollout(policy, tok, prompt, batch, turns, turn_tokens, sp, gen), repeats,
                           policy.device))
    assert runs[-1][1] == batch * turns * turn_tokens
    return min(seconds for seconds, _ in runs)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="tiny-llama", help="tiny-llama (default), smollm2-135m-instruct or a path")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--turns", type=int, default=4)
    ap.add_argument("--turn-tokens", type=int, default=32)
    ap.add_argument("--context-words", type=int, default=0,
                    help="words of a tool manual put before the first question (a long first message)")
    args = parse_bench_args(ap, argv, repeats=2)
    policy = LMActorCritic.from_pretrained(args.model, device=args.device)
    tok = policy.tokenizer
    if not getattr(tok, "chat_template", None):  # the tiny presets: a ChatML template, as SmolLM2 has
        tok.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                             "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    sp = SamplingParams(1.0)
    b, turns, tt = args.batch, args.turns, args.turn_tokens
    manual = " ".join((MANUAL.split() * (args.context_words // len(MANUAL.split()) + 1))[:args.context_words])
    prompt = f"{manual}\n\n{PROMPT}" if manual else PROMPT
    header = (f"model={args.model} device={args.device} batch={b} turns={turns} tokens/turn={tt} "
              f"context words={args.context_words} threads={torch.get_num_threads()}\nmachine: {machine_info()}")
    print(header, flush=True)
    env = make_env(tok, prompt, b, turns, tt, policy.action_size)
    cached = time_textgym(policy, env, sp, args.repeats)
    reencoded = time_reencode(policy, tok, prompt, b, turns, tt, sp, args.repeats)
    prefills: list[int] = []  # one untimed conversation to count the positions each side runs per row
    reencode_rollout(policy, tok, prompt, 1, turns, tt, sp, torch.Generator(device=policy.device).manual_seed(0),
                     prefills)
    work_reencode = sum(prefills) + turns * tt  # every turn: prefill the conversation, then decode the turn
    work_cached = prefills[-1] + tt  # every token of the final conversation once
    n_tok = b * turns * tt
    tag = re.sub(r"[^A-Za-z0-9_.-]", "_", args.model.rstrip("/").split("/")[-1])
    tag += f"-context{args.context_words}" if args.context_words else ""
    table = Table(f"multiturn_throughput-{tag}", ["method", "agent tokens/s", "ratio vs re-encode",
                                                  "positions per row", "work ratio"], {"agent tokens/s": 1})
    table.add("re-encode + prefill the conversation every turn", n_tok / reencoded, 1.0, work_reencode, 1.0)
    table.add("textgym: KV cache kept across turns", n_tok / cached, reencoded / cached, work_cached,
              work_reencode / work_cached)
    table.emit(f"### Multi-turn rollout: KV cache across turns vs re-encoding ({args.model})\n\n{header}",
               out_dir=args.out_dir, notes="Target: ratio >= 3 at 4 turns on SmolLM2. Best of the repeats after a warm-up.")
    print(f"ratio: {reencoded / cached:.2f}x", flush=True)
    return None


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
