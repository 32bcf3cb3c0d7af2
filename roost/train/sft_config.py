"""What ``roost sft`` runs with: the loop's config with fine-tuning's defaults, the mining config and SFT's own.

Kept apart from :mod:`roost.train.sft` (which imports torch) so the command line can show these defaults in
``roost sft --help`` without loading the training stack.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from roost.errors import UserError
from roost.train.config import TrainConfig
from roost.train.conversations import MiningConfig

SFT_SOURCE = "roost sft"  # the model manifest's "source" once SFT wrote workspace/model/
# Where TrainConfig's defaults (made for pretraining) do not suit fine-tuning: no warmup, decay to zero over
# the run (nanochat's SFT schedule), and evaluations and checkpoints sized to a shorter run.
SFT_TRAIN_DEFAULTS = {"run": "sft", "warmup": 0, "cooldown": 1.0, "eval_every": 50, "ckpt_every": 200}


@dataclass
class SFTConfig:
    train: TrainConfig = field(default_factory=lambda: TrainConfig(**SFT_TRAIN_DEFAULTS))
    mining: MiningConfig = field(default_factory=MiningConfig)
    # Every learning rate is pretraining's (roost.train.optim) times this. 1: SFT must teach the role and <|end|>
    # tokens pretraining never saw (roost has no mid-training stage); on the sample network 1.0 reached val loss
    # 0.66 in one epoch and stops at <|end|>, 0.1 only 1.39 and runs on past it.
    lr_frac: float = 1.0
    epochs: float | None = None  # run length when none of steps/tokens/minutes is given; None means 1

    def __post_init__(self) -> None:
        if not 0 < self.lr_frac <= 1:
            raise UserError(f"--lr-frac must be in (0, 1], got {self.lr_frac}")
        if self.epochs is not None:
            if not self.epochs > 0:
                raise UserError(f"--epochs must be a positive number, got {self.epochs}")
            given = [f"--{n}" for n in ("steps", "tokens", "minutes") if getattr(self.train, n) is not None]
            if given:
                raise UserError(
                    f"give at most one of --epochs, --steps, --tokens, --minutes (got --epochs and {given[0]})"
                )

    @classmethod
    def make(cls, train: dict | None = None, mining: dict | None = None, **sft) -> SFTConfig:
        """A config from the flags given: SFT's defaults where a flag is absent."""
        return cls(TrainConfig(**{**SFT_TRAIN_DEFAULTS, **(train or {})}), MiningConfig(**(mining or {})), **sft)

    def sft_dict(self) -> dict:
        """What a checkpoint saves beside the TrainConfig (``meta["sft"]``)."""
        return {"mining": asdict(self.mining), "lr_frac": self.lr_frac, "epochs": self.epochs}

    @classmethod
    def from_meta(cls, meta: dict) -> SFTConfig:
        sft = meta["sft"]
        return cls(TrainConfig.from_dict(meta["config"]), MiningConfig(**sft["mining"]), sft["lr_frac"], sft["epochs"])

    def resumed_with(self, train: dict, mining: dict, **sft) -> SFTConfig:
        """This (saved) config with the flags given on ``--resume``; the data and the rates may not change."""
        given = {**mining, **({"lr_frac": sft["lr_frac"]} if "lr_frac" in sft else {})}
        saved = {**asdict(self.mining), "lr_frac": self.lr_frac}
        changed = [k for k, v in given.items() if v != saved[k]]
        if changed:
            details = ", ".join(f"{_as_flag(k, given[k])} (checkpoint has {_as_flag(k, saved[k])})" for k in changed)
            raise UserError(f"--resume cannot change the conversations or learning rates: {details}; drop these flags")
        new_train = self.train.resumed_with(train)
        epochs = self.epochs
        if any(k in train for k in ("steps", "tokens", "minutes")):
            epochs = None
        if sft.get("epochs") is not None:  # a new length replaces the old one
            new_train, epochs = replace(new_train, steps=None, tokens=None, minutes=None), sft["epochs"]
        return SFTConfig(new_train, self.mining, self.lr_frac, epochs)


def _as_flag(name: str, value) -> str:
    if name == "two_party":  # the flag is --all-voices, which turns it off
        return "no --all-voices" if value else "--all-voices"
    return f"--{name.replace('_', '-')} {value!r}"
