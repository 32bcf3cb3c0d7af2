"""What a run reports: ``runs/NAME/metrics.jsonl``, TensorBoard events (if installed), ``loss.png``, MFU.

MFU (model FLOPs utilisation) is achieved FLOPs over the device's peak: it is
given only where the peak is known (the table below: dense bf16 tensor-core
FLOPs from the vendors' data sheets), never for CPUs.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

# Dense (no sparsity) bf16 peak FLOP/s, matched by substring of torch.cuda.get_device_name(), first match wins.
PEAK_BF16_FLOPS: list[tuple[str, float]] = [
    ("GB200", 2.5e15),
    ("B200", 2.25e15),
    ("H200", 989e12),
    ("H100 PCIe", 756e12),
    ("H100", 989e12),
    ("H800", 989e12),
    ("A100", 312e12),
    ("A800", 312e12),
    ("L40S", 362e12),
    ("L40", 181e12),
    ("L4", 121e12),
    ("A10G", 70e12),
    ("A10", 125e12),
    ("RTX 4090", 165e12),
    ("RTX 3090", 71e12),
    ("MI300X", 1307e12),
    ("MI250X", 383e12),
]


@dataclass
class OverfitWatch:
    """Says once when validation loss has risen clearly above its best after a pass over the training data.

    Why: roost's rates learn a small corpus by heart from about its third pass. On half of TweetEval
    (~0.94M tokens) validation loss was lowest at step 600 of 1,171 and rose through the rest of the run,
    and the model it exported was worse than the GPT-2 recipe's (BENCHMARKS.md, "Training"). The run goes on
    as asked; the user learns why its last model is not its best.
    """

    tolerance: float = 0.02  # relative rise over the best that counts; evaluation noise stays below it
    best: float = math.inf
    best_step: int = 0
    said: bool = False

    def check(self, step: int, val_loss: float, passes: int) -> str | None:
        """The warning to print at this evaluation, if any; ``passes``: full passes over the training data so far."""
        if val_loss < self.best:
            self.best, self.best_step = val_loss, step
            return None
        if self.said or passes < 1 or val_loss <= self.best * (1 + self.tolerance):
            return None
        self.said = True
        return (
            f"warning: validation loss {val_loss:.4f} is {val_loss / self.best - 1:.0%} above its best "
            f"({self.best:.4f} at step {self.best_step}) after {passes} pass(es) over the training data: the model "
            "is learning the training text by heart, and the model exported at the end is the last step's. More "
            "text, fewer steps (--steps, --minutes) or more weight decay (--weight-decay 0.4; the default is 0.1) "
            "would give a better one."
        )


def peak_flops(device: torch.device) -> float | None:
    """Peak bf16 FLOP/s of one device, or None where unknown (CPU, MPS, unlisted GPUs)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((flops for key, flops in PEAK_BF16_FLOPS if key in name), None)


class MetricsLog:
    """Appends one JSON record per line.

    On resume it drops what came after the checkpoint: train records past its
    step, and evaluations at or past it (the resumed loop evaluates that step again).
    """

    def __init__(self, run_dir: Path, resume_step: int | None = None):
        self.path = Path(run_dir) / "metrics.jsonl"
        if resume_step is None:
            self.path.write_text("")
        elif self.path.exists():
            kept = [line for line in self.path.read_text().splitlines() if _before(line, resume_step)]
            self.path.write_text("".join(line + "\n" for line in kept))
        self._file = open(self.path, "a")
        self._tb = _tensorboard_writer(Path(run_dir) / "tensorboard")

    def log(self, record: dict) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tb is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self._tb.add_scalar(key, value, record["step"])

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def _before(line: str, step: int) -> bool:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:  # the half-written last line of a killed run
        return False
    return record["step"] < step or (record["step"] == step and "val_loss" not in record)


def _tensorboard_writer(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(folder))


def read_metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line]


def plot_losses(metrics_path: Path, out_png: Path, title: str = "") -> Path:
    """Train loss (per step) and validation loss (per evaluation) against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics_path)
    train = [(r["step"], r["loss"]) for r in records if "loss" in r]
    val = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train), label="train", linewidth=1)
    if val:
        ax.plot(*zip(*val), "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    return Path(out_png)
