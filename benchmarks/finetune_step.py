"""What fine-tuning the embedder would cost here: seconds per training step of the default e5 model on the CPU.

    .venv/bin/python benchmarks/finetune_step.py [--steps 3] [--batch 32] [--tokens 256] [--freeze-embeddings]

One step = forward and backward pass over ``--batch`` texts of ``--tokens`` tokens (a SetFit-style contrastive
batch of 16 pairs) and an AdamW update. Prints seconds per step; writes nothing. A SetFit-style run over the
labelled rows needs a few hundred such steps, and each fold of an honest cross-validation needs its own run.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--tokens", type=int, default=256)
    p.add_argument("--freeze-embeddings", action="store_true", help="train the encoder layers only")
    args = p.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    from classifier.embedders import ensure_default_model

    model = SentenceTransformer(str(ensure_default_model()), device="cpu")
    model.max_seq_length = args.tokens
    if args.freeze_embeddings:
        for name, param in model.named_parameters():
            if "embeddings" in name:
                param.requires_grad = False
    params = [q for q in model.parameters() if q.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=2e-5)
    text = "passage: " + "Hankkeen tavoitteena on vahvistaa pk-yritysten henkilöstön työhyvinvointia. " * 40
    features = model.tokenize([text] * args.batch)
    half = args.batch // 2
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        emb = model(features)["sentence_embedding"]
        loss = -(emb[:half] * emb[half:]).sum(dim=1).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        times.append(time.perf_counter() - t0)
    print(f"{args.batch} texts x {args.tokens} tokens, {len(params)} parameter tensors trained, "
          f"torch threads {torch.get_num_threads()}: seconds per step {', '.join(f'{t:.1f}' for t in times)}")


if __name__ == "__main__":
    main()
