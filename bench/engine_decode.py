"""Single-stream decode speed: roost's engine against Hugging Face ``generate()`` on the same weights.

    .venv/bin/python bench/engine_decode.py --depth 4 --prompt 64 --tokens 256 --rounds 5 --threads 1

A random-init GPT is exported with roost.export.save_hf and loaded back twice:
by roost (roost.export.load_hf, served by roost.engine.Engine with one slot)
and by transformers (AutoModelForCausalLM). Both decode the same prompt
greedily for exactly ``--tokens`` new tokens (end-of-text ignored), in
alternating rounds so they share the machine's noise. Timings include the
prefill; the table gives the median new tokens/s of each and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch
from paths import TWEETEVAL  # noqa: E402  (bench/paths.py: ../shared beside the repository)

TWEETS = TWEETEVAL / "sentiment" / "train_text.txt"


def make_model_dir(out: Path, depth: int, vocab: int, max_seq_len: int) -> Path:
    """A served-model folder (HF format + tokenizer) with a random-init GPT of this depth; returns it."""
    from roost.export import save_hf
    from roost.model import GPT, GPTConfig
    from roost.tokenizer import TokenizerConfig, train_bpe

    texts = TWEETS.read_text().splitlines()[:20000] if TWEETS.exists() else [f"post number {i}" for i in range(2000)]
    tok_dir = out / "tokenizer"
    tok_dir.mkdir(parents=True, exist_ok=True)
    train_bpe(texts, TokenizerConfig(vocab_size=vocab)).save(str(tok_dir / "tokenizer.json"))
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_depth(depth, vocab_size=vocab, max_seq_len=max_seq_len))
    return save_hf(model, out / "workspace" / "model", tok_dir)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--vocab", type=int, default=4096)
    p.add_argument("--prompt", type=int, default=64, help="prompt tokens")
    p.add_argument("--tokens", type=int, default=256, help="new tokens per run")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from transformers import AutoModelForCausalLM

    from roost.engine import Engine, EngineConfig, SamplingParams
    from roost.export import load_hf
    from roost.model import describe
    from roost.tokenizer import load_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        folder = make_model_dir(Path(tmp), args.depth, args.vocab, max_seq_len=args.prompt + args.tokens)
        model, tokenizer = load_hf(folder), load_tokenizer(folder)
        hf = AutoModelForCausalLM.from_pretrained(folder).eval()
    engine = Engine(model, tokenizer, EngineConfig(slots=1))
    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(len(tokenizer.special_ids), args.vocab, (args.prompt,), generator=g).tolist()
    params = SamplingParams(max_tokens=args.tokens, temperature=0, ignore_eos=True)

    def run_roost() -> list[int]:
        return [t for e in engine.submit(prompt, params) for t in e.token_ids]

    def run_hf() -> list[int]:
        with torch.inference_mode():
            out = hf.generate(
                torch.tensor([prompt]),
                max_new_tokens=args.tokens,
                min_new_tokens=args.tokens,
                do_sample=False,
                eos_token_id=None,
                pad_token_id=tokenizer.pad_id,
            )
        return out[0, len(prompt) :].tolist()

    run_roost(), run_hf()  # warm-up
    times: dict[str, list[float]] = {"roost engine": [], "HF generate": []}
    same = True
    for _ in range(args.rounds):
        for name, fn in (("roost engine", run_roost), ("HF generate", run_hf)):
            t0 = time.perf_counter()
            tokens = fn()
            times[name].append(time.perf_counter() - t0)
            assert len(tokens) == args.tokens, (name, len(tokens))
        same &= run_roost() == run_hf()
    engine.close()

    print(describe(model.config))
    print(
        f"prompt {args.prompt} tokens, {args.tokens} new tokens, greedy, {args.rounds} rounds, "
        f"{args.threads} thread(s); same tokens from both: {same}"
    )
    print(f"{'':14} {'median s':>9} {'tokens/s':>9}")
    rate = {}
    for name, ts in times.items():
        rate[name] = args.tokens / statistics.median(ts)
        print(f"{name:14} {statistics.median(ts):9.3f} {rate[name]:9.1f}")
    print(f"ratio roost / HF: {rate['roost engine'] / rate['HF generate']:.2f}x")


if __name__ == "__main__":
    main()
