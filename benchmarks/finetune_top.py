"""Fine-tune the top layers of the default embedding model on the labelled rows, on the CPU, and write the result
as a sentence-transformers folder that the rest of laari runs like any other (``LAARI_EMBEDDER``).

    .venv/bin/python benchmarks/finetune_top.py --out /tmp/e5-ft [--layers 2] [--epochs 3] [--tokens 256]
    LAARI_EMBEDDER=/tmp/e5-ft LAARI_EMBED_BACKEND=torch .venv/bin/laari train --no-promote --version ft --json
    LAARI_EMBEDDER=/tmp/e5-ft LAARI_EMBED_BACKEND=torch .venv/bin/laari evaluate --model ft \\
        --data ../shared/real-sample/projects.jsonl

Why only the top layers: a full fine-tuning step (32 texts of 256 tokens) takes about 10 s on the 2-core machine
(``benchmarks/finetune_step.py``). Here the frozen lower layers run once per text; their output (the hidden states
at the first trained layer) is kept, and each step runs forward and backward through the top ``--layers`` only.

Objective: the laari of each training row (the default training files; the register held-out split is never
seen), by a cosine classifier on the model's normalised mean-pooled vector (one learned direction per laari,
scale 20), class-balanced cross-entropy. The classifier is thrown away; what is kept is the encoder, whose vectors
the model's own heads then learn from.

What this cannot give: an honest cross-validated figure. The embedder has seen every training row's label, so the
cross-validation inside ``laari train`` is optimistic for such an embedder; only the register held-out split and
the real sample score it fairly. Prints and writes (``--json``) the training log and the time taken.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def training_rows():
    from classifier.taxonomy import load_taxonomy
    from classifier.text import join_document, normalize
    from training import pipeline

    tax = load_taxonomy(None)
    labelled = pipeline.load_files(pipeline.default_files(pipeline.DEFAULT_TRAINING_FILES), tax)
    docs = [join_document(normalize(t or ""), normalize(d)) for t, d in zip(labelled.titles, labelled.descriptions)]
    return docs, list(labelled.laari), tax


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="where to write the fine-tuned model folder")
    ap.add_argument("--layers", type=int, default=2, help="top encoder layers to train")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=256, help="tokens of each text read in training")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0, help="use only the first N rows (a quick trial of the script)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import torch
    from sentence_transformers import SentenceTransformer

    from classifier.embedders import ensure_default_model
    from classifier.embedders.sentence_transformer import _read_prefixes

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    t_start = time.perf_counter()
    source = ensure_default_model()
    st = SentenceTransformer(str(source), device="cpu")
    bert = st[0].auto_model
    bert.eval()
    n_layers = len(bert.encoder.layer)
    first = n_layers - args.layers
    prefix = _read_prefixes(source).get("passage", "")  # as the engines prefix a document

    docs, labels, _ = training_rows()
    if args.limit:
        docs, labels = docs[:args.limit], labels[:args.limit]
    classes = sorted(set(labels))
    y = torch.tensor([classes.index(v) for v in labels])
    counts = np.bincount(y.numpy(), minlength=len(classes))
    class_weight = torch.tensor(len(y) / (len(classes) * counts), dtype=torch.float32)
    tok = st.tokenizer
    enc = tok([prefix + d for d in docs], truncation=True, max_length=args.tokens, padding=False)

    # the frozen part, once per text: hidden states entering layer `first`
    t0 = time.perf_counter()
    hidden = []
    order = np.argsort([len(ids) for ids in enc["input_ids"]])
    with torch.no_grad():
        for start in range(0, len(docs), 16):
            idx = order[start:start + 16]
            batch = tok.pad({"input_ids": [enc["input_ids"][i] for i in idx],
                             "attention_mask": [enc["attention_mask"][i] for i in idx]}, return_tensors="pt")
            out = bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       output_hidden_states=True)
            h = out.hidden_states[first]
            for j, i in enumerate(idx):
                n = int(batch["attention_mask"][j].sum())
                hidden.append((int(i), h[j, :n].clone()))
    hidden = [h for _, h in sorted(hidden, key=lambda x: x[0])]
    frozen_s = time.perf_counter() - t0
    print(f"frozen layers 0-{first - 1} over {len(docs)} texts: {frozen_s:.0f} s", flush=True)

    top = bert.encoder.layer[first:]

    def forward_vectors(ids: list[int]):
        lengths = [hidden[i].shape[0] for i in ids]
        width = max(lengths)
        h = torch.zeros(len(ids), width, bert.config.hidden_size)
        mask = torch.zeros(len(ids), width, dtype=torch.long)
        for j, i in enumerate(ids):
            h[j, :lengths[j]] = hidden[i]
            mask[j, :lengths[j]] = 1
        ext = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min  # additive, as eager/sdpa take
        for layer in top:
            out = layer(h, attention_mask=ext)
            h = out[0] if isinstance(out, tuple) else out
        m = mask.unsqueeze(-1).float()
        pooled = (h * m).sum(1) / m.sum(1)
        return torch.nn.functional.normalize(pooled, dim=1)

    with torch.no_grad():  # the split forward gives the model's own vectors before any training
        check = st.encode([tok.decode(enc["input_ids"][i], skip_special_tokens=True) for i in range(4)],
                          normalize_embeddings=True, convert_to_tensor=True)
        ours = forward_vectors(list(range(4)))
    agreement = float((check * ours).sum(1).min())
    print(f"split forward against the model's own vectors: lowest cosine {agreement:.5f}", flush=True)

    for p in bert.parameters():
        p.requires_grad = False
    for p in top.parameters():
        p.requires_grad = True
    directions = torch.nn.Parameter(torch.nn.functional.normalize(torch.randn(len(classes), bert.config.hidden_size),
                                                                  dim=1))
    optimizer = torch.optim.AdamW([*top.parameters(), directions], lr=args.lr, weight_decay=0.01)
    loss_fn = torch.nn.CrossEntropyLoss(weight=class_weight)

    log = []
    for epoch in range(args.epochs):
        top.train()
        perm = rng.permutation(len(docs))
        total, t0 = 0.0, time.perf_counter()
        for start in range(0, len(perm), args.batch):
            ids = [int(i) for i in perm[start:start + args.batch]]
            v = forward_vectors(ids)
            logits = 20.0 * v @ torch.nn.functional.normalize(directions, dim=1).T
            loss = loss_fn(logits, y[ids])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(ids)
        entry = {"epoch": epoch + 1, "loss": round(total / len(docs), 4), "seconds": round(time.perf_counter() - t0, 1)}
        log.append(entry)
        print(json.dumps(entry), flush=True)
    top.eval()

    if args.out.exists():
        shutil.rmtree(args.out)
    shutil.copytree(source, args.out)
    st.save(str(args.out))
    meta = {"source": str(source), "split_forward_cosine": round(agreement, 5), "layers_trained": args.layers, "epochs": args.epochs, "tokens": args.tokens,
            "batch": args.batch, "lr": args.lr, "seed": args.seed, "rows": len(docs), "classes": classes,
            "frozen_pass_s": round(frozen_s, 1), "log": log, "seconds": round(time.perf_counter() - t_start, 1)}
    (args.out / "laari_finetune.json").write_text(json.dumps(meta, indent=2))
    print(json.dumps({k: meta[k] for k in ("layers_trained", "epochs", "rows", "seconds")}), flush=True)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(meta, indent=2))


if __name__ == "__main__":
    main()
