"""TrainConfig: every knob of a pretraining run, with defaults, checked at start.

The config is saved in each checkpoint; ``--resume`` reloads it, so a resumed
run trains the same model on the same data order. Problems are reported as
``ValueError`` naming the flag to change, before any work is done.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields

from roost.errors import UserError

OPTIMIZERS = ("adamw", "muon")
SCHEDULES = ("cosine", "wsd")
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "bfloat16", "float32")  # roost.precision.compute_dtype
PARALLEL = ("ddp", "fsdp")  # roost.train.dist.wrap_model
INITS = ("scratch", "model")  # random weights, or workspace/model/ (roost.train.pretrain.initial_model)
CLOCKS = ("wall", "cpu")  # what --minutes counts (roost.train.loop.budget_clock)

# Fields that fix the model and the data order: a resumed run may not change them.
FROZEN_ON_RESUME = (
    "depth",
    "max_seq_len",
    "seq_len",
    "device_batch",
    "optimizer",
    "lr",
    "weight_decay",  # a resumed optimizer keeps its saved groups' decay
    "seed",
    "tie_embeddings",
    "init",
)
# What the model in workspace/model/ fixes when training starts from it (--init model).
MODEL_FIXED = ("depth", "max_seq_len", "tie_embeddings")

# With no --steps/--tokens/--minutes, train on this many tokens per parameter (Chinchilla, as nanochat does).
TOKENS_PER_PARAM = 20


@dataclass
class TrainConfig:
    # model: width = 64 * depth (roost.model.GPTConfig.from_depth)
    depth: int = 4
    max_seq_len: int = 1024  # the model's context; training sequences may be shorter
    tie_embeddings: bool = False
    # scratch: random weights of the shape above; model: continue pretraining workspace/model/ (e.g. `roost import`ed),
    # whose shape then replaces depth, max_seq_len and tie_embeddings
    init: str = "scratch"
    # batch: batch_tokens = device_batch * seq_len * grad_accum * world_size
    seq_len: int = 256
    device_batch: int = 16
    batch_tokens: int | None = None  # None: one micro-batch per step on every rank (grad_accum 1)
    # how long: at most one of these; none means TOKENS_PER_PARAM tokens per parameter
    steps: int | None = None
    tokens: int | None = None
    minutes: float | None = None
    # what --minutes (and each step's seconds) counts: wall = elapsed time; cpu = this process's CPU time, so runs
    # sharing a loaded machine get the same compute for the same budget
    clock: str = "wall"
    # optimisation
    optimizer: str = "muon"
    lr: float | None = None  # the matrix learning rate; None derives it from the width (roost.train.optim)
    weight_decay: float | None = None  # the matrices' decoupled weight decay; None: the optimizer's default
    schedule: str = "wsd"
    warmup: int = 20  # steps of linear warmup
    cooldown: float = 0.4  # wsd: fraction of the run spent decaying to min_lr
    min_lr: float = 0.0  # final learning rate, as a fraction of the peak
    grad_clip: float = 1.0  # max global grad norm; 0 disables clipping
    # evaluation, checkpoints, logging
    eval_every: int = 100
    eval_tokens: int = 65536  # validation tokens per evaluation (fewer if val is smaller)
    ckpt_every: int = 500
    keep: int = 3  # checkpoints kept on disk
    run: str = "pretrain"
    # runtime
    device: str = "auto"
    dtype: str = "auto"  # matmuls in bf16 under autocast (fp32 master weights) or fp32; auto: bf16 where it is fast
    parallel: str = "ddp"  # with many processes: DistributedDataParallel or FSDP2 (roost.train.dist)
    activation_checkpointing: bool = False  # recompute each block's activations in backward (less memory)
    compile: bool = False
    # a CPU step's threads: fixed = torch's count all run (one a core, or OMP_NUM_THREADS), bitwise repeatable;
    # auto = fewer while other work keeps the cores busy (roost.threads): faster there, not repeatable
    threads: str = "fixed"
    seed: int = 1337

    def __post_init__(self) -> None:
        def positive(name: str, allow_none: bool = False) -> None:
            v = getattr(self, name)
            if v is None and allow_none:
                return
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise UserError(f"--{flag(name)} must be a positive number, got {v!r}")

        for name in (
            "depth",
            "max_seq_len",
            "seq_len",
            "device_batch",
            "eval_every",
            "eval_tokens",
            "ckpt_every",
            "keep",
        ):
            positive(name)
        for name in ("batch_tokens", "steps", "tokens", "minutes", "lr"):
            positive(name, allow_none=True)
        if self.warmup < 0:
            raise UserError(f"--warmup must be >= 0 steps, got {self.warmup}")
        if not 0 <= self.cooldown <= 1:
            raise UserError(f"--cooldown must be a fraction in [0, 1], got {self.cooldown}")
        if not 0 <= self.min_lr <= 1:
            raise UserError(f"--min-lr must be a fraction of the peak in [0, 1], got {self.min_lr}")
        if self.weight_decay is not None and not 0 <= self.weight_decay < 1:
            raise UserError(f"--weight-decay must be in [0, 1), got {self.weight_decay}")
        if self.grad_clip < 0:
            raise UserError(f"--grad-clip must be >= 0 (0 disables clipping), got {self.grad_clip}")
        for name, allowed in (
            ("optimizer", OPTIMIZERS),
            ("schedule", SCHEDULES),
            ("device", DEVICES),
            ("dtype", DTYPES),
            ("parallel", PARALLEL),
            ("init", INITS),
            ("clock", CLOCKS),
        ):
            if getattr(self, name) not in allowed:
                raise UserError(f"--{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        from roost.threads import check_mode  # here, not at the top: the CLI's flags need no torch

        check_mode(self.threads)
        given = [f"--{n}" for n in ("steps", "tokens", "minutes") if getattr(self, n) is not None]
        if len(given) > 1:
            raise UserError(f"give at most one of --steps, --tokens, --minutes (got {' and '.join(given)})")
        if self.seq_len > self.max_seq_len:
            raise UserError(
                f"--seq-len {self.seq_len} is above the model's context --max-seq-len {self.max_seq_len}; "
                f"lower --seq-len or raise --max-seq-len"
            )
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", self.run):
            raise UserError(f"--run {self.run!r}: use letters, digits, '.', '_' and '-' only (it names a folder)")

    def grad_accum(self, world_size: int) -> int:
        """Micro-batches per step on each rank; refuses a token batch that does not divide."""
        per_micro = self.device_batch * self.seq_len * world_size
        if self.batch_tokens is None:
            return 1
        if self.batch_tokens % per_micro:
            lower = max(per_micro, self.batch_tokens // per_micro * per_micro)
            raise UserError(
                f"--batch-tokens {self.batch_tokens} is not a multiple of device_batch x seq_len x world_size = "
                f"{self.device_batch} x {self.seq_len} x {world_size} = {per_micro}; use --batch-tokens {lower} "
                f"or {lower + per_micro}, or change --device-batch / --seq-len"
            )
        return self.batch_tokens // per_micro

    def step_tokens(self, world_size: int) -> int:
        return self.device_batch * self.seq_len * world_size * self.grad_accum(world_size)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"TrainConfig: unknown field(s) {unknown}")
        return cls(**d)

    def resumed_with(self, overrides: dict) -> TrainConfig:
        """This (saved) config with the flags a user gave on ``--resume``; refuses changes to frozen fields."""
        changed = [k for k in FROZEN_ON_RESUME if k in overrides and overrides[k] != getattr(self, k)]
        if changed:
            details = ", ".join(f"--{flag(k)} {overrides[k]} (checkpoint has {getattr(self, k)})" for k in changed)
            raise UserError(f"--resume cannot change the model or data order: {details}; drop these flags")
        d = self.to_dict()
        if any(k in overrides for k in ("steps", "tokens", "minutes")):  # a new length replaces the old one
            d.update(steps=None, tokens=None, minutes=None)
        d.update(overrides)
        return TrainConfig(**d)


def flag(name: str) -> str:
    return name.replace("_", "-")
