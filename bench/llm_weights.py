"""SmolLM2's weights in other llama.cpp formats: decoding speed and how far each moves the model.

    .venv/bin/python bench/llm_weights.py [--formats MOSTLY_Q8_0 MOSTLY_Q4_0 MOSTLY_IQ4_NL] [--texts 60]

The packaged file is Q4_1; each format is made from it with ``promptclf.llms.requantise.quantise`` (in a
temporary folder). Speed: milliseconds per decoding step of 1, 8 and 16 sequences side by side
(``llama_batch``, the path the pipeline's example requests take), 48 sampled tokens after a short chat
prompt, the formats taking turns 6 times in one process; medians, and the ratio to Q4_1 in the same
rounds. Closeness: real train-split texts of sst2, ag_news and trec6 (``--texts`` of each, at most 200
tokens), every next-token distribution under each format against Q4_1's (mean KL in nats per token)
and each format's mean negative log-likelihood per token of the texts.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from common import machine, publish, read_rows, table

from promptclf.llms import local
from promptclf.llms.llama_batch import Prompt
from promptclf.llms.requantise import quantise

PROMPT = "<|im_start|>user\nWrite a long story about a dragon and a knight.<|im_end|>\n<|im_start|>assistant\n"
HEADER = [
    "weights", "file MB", "ms / step, 1 sequence", "8 sequences", "16 sequences",
    "KL from Q4_1 (nats / token)", "NLL / token",
]  # fmt: skip


def step_times(paths: dict[str, Path], rounds: int = 6, tokens: int = 48) -> dict[str, dict[int, float]]:
    """Median ms per decoding step of n sequences, the formats taking turns within each round."""
    decoders = {}
    for name, path in paths.items():
        llm = local.LlamaCppLLM(str(path))
        llama = llm._llama()
        decoders[name] = (llm._decoder(llm._key()), llama.tokenize(PROMPT.encode(), add_bos=False, special=True))
    out: dict[str, dict[int, float]] = {name: {} for name in paths}
    for n in (1, 8, 16):
        times: dict[str, list[float]] = {name: [] for name in paths}
        for r in range(rounds):
            for name, (decoder, prompt) in decoders.items():
                ps = [Prompt(list(prompt), max_tokens=tokens, temperature=1.0, seed=100 * r + s) for s in range(n)]
                t = time.perf_counter()
                done = decoder.complete(ps)
                times[name].append(1000 * (time.perf_counter() - t) / max(d.completion_tokens for d in done))
        for name in paths:
            out[name][n] = statistics.median(times[name])
    local._close_all()
    return out


def log_probs(path: Path, texts: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each text's next-token log-probabilities and its tokens."""
    from llama_cpp import Llama

    with contextlib.redirect_stderr(io.StringIO()):
        llama = Llama(model_path=str(path), n_ctx=256, logits_all=True, verbose=False)
    out = []
    for text in texts:
        tokens = llama.tokenize(text.encode(), add_bos=True)[:200]
        llama.reset()
        llama.eval(tokens)
        s = np.asarray(llama.scores[: len(tokens)], dtype=np.float64)
        out.append(((s - np.logaddexp.reduce(s, axis=1, keepdims=True))[:-1], np.asarray(tokens[1:])))
    llama.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--formats", nargs="+", default=["MOSTLY_Q8_0", "MOSTLY_Q4_0", "MOSTLY_IQ4_NL"])
    ap.add_argument("--texts", type=int, default=60)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    texts = []
    for name in ("sst2", "ag_news", "trec6"):
        rows = read_rows(name, "train")
        texts += [rows[i]["text"] for i in np.random.default_rng(7).permutation(len(rows))[: args.texts]]
    local.REQUANTISED = False
    src = local.resolve_gguf("smollm2")
    with tempfile.TemporaryDirectory() as tmp:
        paths = {"Q4_1 (packaged)": src}
        for ftype in args.formats:
            paths[ftype.removeprefix("MOSTLY_")] = Path(tmp) / f"{ftype}.gguf"
            quantise(src, paths[ftype.removeprefix("MOSTLY_")], ftype)
        speed = step_times(paths)
        ref = log_probs(src, texts)
        rows = []
        for name, path in paths.items():
            cur = ref if path == src else log_probs(path, texts)
            nll = np.concatenate([-lp[np.arange(len(t)), t] for lp, t in cur])
            kl = np.concatenate([(np.exp(r) * (r - c)).sum(1) for (r, _), (c, _) in zip(ref, cur)])
            base = speed["Q4_1 (packaged)"]
            rows.append([
                name, f"{path.stat().st_size / 1e6:.0f}",
                *(f"{speed[name][n]:.1f} ({base[n] / speed[name][n]:.2f}x)" for n in (1, 8, 16)),
                f"{kl.mean():.3f}", f"{nll.mean():.3f} ± {nll.std() / np.sqrt(len(nll)):.3f}",
            ])  # fmt: skip
            print(rows[-1], flush=True)
    body = f"""## SmolLM2's weights in other formats (issue 16)

{dt.date.today().isoformat()}, {machine()}. Regenerate with `.venv/bin/python bench/llm_weights.py`.
The packaged SmolLM2-135M file is Q4_1; each other format is made from it on this machine
(`promptclf.llms.requantise.quantise`). *ms / step*: a decoding step of 1, 8 and 16 sequences side by
side (the batched path the pipeline's example requests take), 48 sampled tokens after a short chat
prompt, one thread per core, the formats taking turns 6 times in one process; medians, and the ratio
to Q4_1 in the same rounds. *KL from Q4_1*: every next-token distribution of {3 * args.texts} real
train-split texts (sst2, ag_news, trec6; {len(np.concatenate([t for _, t in ref])):,} tokens) against
the packaged file's, mean nats per token; *NLL / token*: mean negative log-likelihood of those texts'
tokens (± its standard error).

{table(HEADER, rows)}
"""
    publish("llm-weights", body, write=not args.no_write)


if __name__ == "__main__":
    main()
