"""Run by the data-parallel SFT test (one process or under ``python -m torch.distributed.run``).

``python dist_sft_worker.py GRAD_ACCUM OUT_DIR``: one SFT step of ``tiny-llama`` (LoRA) on ``ROWS``
(micro-batches of 2 rows, ``GRAD_ACCUM`` per rank and step); writes ``OUT_DIR/sft_rank{r}.pt``
with the flattened gradient of that step (after the all-reduce) and the step's metrics.
"""

import sys
from pathlib import Path

import torch

from textgym.agents.common import distributed
from textgym.agents.trainers.sft import SFTConfig, SFTTrainer

#: rows of different completion lengths, so that a token mean differs from a mean of per-rank means
ROWS = [{"prompt": "a b c", "completion": " d e f g h i j"}, {"prompt": "x", "completion": " y"},
        {"prompt": "one two", "completion": " three four five"}, {"prompt": "p q r s", "completion": " t"},
        {"prompt": "k", "completion": " l m n o p q r s t u"}, {"prompt": "hello", "completion": " world !"},
        {"prompt": "1 2 3", "completion": " 4"}, {"prompt": "z", "completion": " y x w v"}]


def main() -> None:
    torch.set_num_threads(1)
    accum, out_dir = int(sys.argv[1]), Path(sys.argv[2])
    cfg = SFTConfig(batch_size=2, grad_accum_steps=accum, max_steps=1, learning_rate=1e-3, lora=True,
                    max_grad_norm=None, progress=False, seed=5, lora_dropout=0.0)
    trainer = SFTTrainer("tiny-llama", train_data=ROWS, config=cfg)
    got = {}
    clip = torch.nn.utils.clip_grad_norm_

    def capture(params, *a, **k):
        params = list(params)
        got.setdefault("grad", torch.cat([p.grad.detach().reshape(-1).clone() for p in params]))
        return clip(params, *a, **k)

    torch.nn.utils.clip_grad_norm_ = capture
    trainer.train()
    torch.save({"grad": got["grad"], "metrics": trainer.history[0], "world_size": distributed.world_size()},
               out_dir / f"sft_rank{distributed.rank()}.pt")


if __name__ == "__main__":
    main()
