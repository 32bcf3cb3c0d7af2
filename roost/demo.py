"""The whole pipeline in one call: sample -> ingest -> tokenizer -> train -> sft -> index -> ads -> serve.

Each stage calls its module's Python API and skips itself when its artifact was
already made from the same inputs (the input hashes its manifest records, and
the settings that shape it), so a second ``roost demo`` goes straight to
serving. The defaults fit the whole first run in about ten minutes on two CPU
cores; tests run the same code with a tiny :class:`DemoConfig`.
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from roost.errors import UserError
from roost.workspace import Workspace, file_hash

SAMPLE_DIR = "sample"
PRETRAIN_RUN = "pretrain"


@dataclass
class DemoConfig:
    workspace: Path = Path("workspace")
    # the sample network
    users: int = 2_000
    posts: int = 50_000  # the sample network's own default: more text for the same training minutes
    campaigns: int = 200
    seed: int = 0
    ingest_workers: int = 0  # 0: one per core (roost.corpus.config.IngestConfig.workers)
    # tokenizer and model
    vocab_size: int = 4096
    val_fraction: float = 0.02  # held-out posts: about 900 of the 50k-post network
    # depth 2 (width 128, 1.4M parameters): a step costs a fifth of depth 4's on a CPU, so the demo's minutes train
    # it for ~790 + 260 steps on one idle core against ~156 + 52, and only then does the chat model answer on the
    # question's topic (97% against 69% of held-out questions, BENCHMARKS.md "Chat: does the demo model answer?")
    depth: int = 2
    seq_len: int = 128
    device_batch: int = 16
    train_minutes: float | None = 3.0
    train_steps: int | None = None  # a step count instead of the time budget (tests)
    eval_every: int = 100
    # chat fine-tuning on the corpus's reply threads (roost.train.sft)
    sft_minutes: float | None = 1.0
    sft_steps: int | None = None  # a step count instead of the time budget (tests)
    # keep a reply only while it shares this many content words with the turn it answers (MiningConfig): the
    # sample's bare "Same here." and switches of language teach a chat model to ignore the question
    sft_min_shared_words: int = 1
    eval_tokens: int = 16_384
    # search's retriever: post encoder steps (0 skips the retriever), query encoder steps, pairs mined
    retriever_steps: int = 600
    retriever_query_steps: int = 40
    retriever_pairs: int = 20_000  # 1,000 left most words untrained: hybrid NDCG@10 0.067 -> 0.15 on held-out posts
    # serving
    host: str = "127.0.0.1"
    port: int = 8000

    def __post_init__(self) -> None:
        self.workspace = Path(self.workspace)
        if (self.train_minutes is None) == (self.train_steps is None):
            raise UserError("give exactly one of train_minutes and train_steps")
        if self.sft_minutes is not None and self.sft_steps is not None:
            raise UserError("give at most one of sft_minutes and sft_steps")
        for name in ("train_minutes", "sft_minutes"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise UserError(f"--{name.replace('_', '-')} must be > 0, got {value}")
        if self.sft_min_shared_words < 0:
            raise UserError(f"--sft-min-shared-words must be >= 0, got {self.sft_min_shared_words}")
        if not 0 < self.port < 65536:
            raise UserError(f"--port must be in 1..65535, got {self.port}")


@dataclass
class StageResult:
    name: str
    ran: bool  # False: skipped, its artifact was up to date
    seconds: float
    detail: str


@dataclass
class Demo:
    """Runs the stages in order over one workspace, timing each."""

    cfg: DemoConfig
    results: list[StageResult] = field(default_factory=list)
    say: Callable[[str], None] = print

    @property
    def ws(self) -> Workspace:
        return Workspace(self.cfg.workspace)

    @property
    def sample_dir(self) -> Path:
        return self.cfg.workspace / SAMPLE_DIR

    def build(self) -> list[StageResult]:
        for name, stage in (
            ("sample", self.sample),
            ("ingest", self.ingest),
            ("tokenizer", self.tokenizer),
            ("tokens", self.tokens),
            ("train", self.train),
            ("sft", self.sft),
            ("retriever", self.retriever),
            ("index", self.index),
            ("ads", self.ads),
            ("safety", self.safety),
        ):
            self.say(f"== {name}")
            t0 = time.perf_counter()
            ran, detail = stage()
            result = StageResult(name, ran, time.perf_counter() - t0, detail)
            self.results.append(result)
            self.say(f"   {'done' if ran else 'up to date'} in {result.seconds:.1f}s: {detail}")
        return self.results

    # ---- the stages: each returns (ran, one line about its artifact) --------------------------

    def sample(self) -> tuple[bool, str]:
        from roost.sample import SampleConfig, generate

        c = self.cfg
        want = asdict(SampleConfig(users=c.users, posts=c.posts, campaigns=c.campaigns, seed=c.seed))
        manifest = _read_json(self.sample_dir / "manifest.json")
        ran = manifest is None or manifest.get("config") != want
        if ran:
            generate(self.sample_dir, users=c.users, posts=c.posts, campaigns=c.campaigns, seed=c.seed, progress=True)
            manifest = _read_json(self.sample_dir / "manifest.json")
        n = manifest["counts"]
        return ran, f"{n['users']:,} users, {n['posts']:,} posts, {n['campaigns']} campaigns in {self.sample_dir}"

    def ingest(self) -> tuple[bool, str]:
        from roost.corpus.config import IngestConfig
        from roost.corpus.ingest import ingest

        ws, posts = self.ws, self.sample_dir / "posts.jsonl"
        manifest = ws.read_manifest("corpus")
        # ingest appends, so a corpus made from another sample is removed rather than added to
        ran = manifest is None or sorted(manifest["inputs"].values()) != [file_hash(posts)]
        if ran:
            if ws.corpus.exists():
                shutil.rmtree(ws.corpus)
            self.say(ingest([posts], ws, IngestConfig(workers=self.cfg.ingest_workers)).summary())
            manifest = ws.read_manifest("corpus")
        n = manifest["counts"]
        return ran, f"{n['posts']:,} posts kept of {n['read']:,} read, {n['threads']:,} threads"

    def tokenizer(self) -> tuple[bool, str]:
        from roost.tokenizer import TokenizerConfig, train_tokenizer_stage

        before = self.ws.read_manifest("tokenizer")
        m = train_tokenizer_stage(
            self.ws, TokenizerConfig(vocab_size=self.cfg.vocab_size, val_fraction=self.cfg.val_fraction)
        )
        return m != before, f"{m['vocab_size']} tokens, {m['bytes_per_token']:.2f} bytes/token on held-out posts"

    def tokens(self) -> tuple[bool, str]:
        from roost.tokens import tokenize_corpus

        before = self.ws.read_manifest("tokens")
        m = tokenize_corpus(self.ws)
        c = m["counts"]
        return m != before, f"train {c['train_tokens']:,} tokens, val {c['val_tokens']:,} tokens"

    def train_config(self):
        from roost.train.config import TrainConfig

        c = self.cfg
        return TrainConfig(
            depth=c.depth,
            seq_len=c.seq_len,
            device_batch=c.device_batch,
            minutes=c.train_minutes,
            steps=c.train_steps,
            eval_every=c.eval_every,
            eval_tokens=c.eval_tokens,
            run=PRETRAIN_RUN,
            warmup=min(20, c.train_steps or 20),
            threads="auto",  # a first run on a laptop shares it with other work (roost.threads)
        )

    def train(self) -> tuple[bool, str]:
        from roost.train.pretrain import saved_config, train

        ws, cfg = self.ws, self.train_config()
        done = ws.read_manifest("checkpoints")
        up_to_date = (
            done is not None
            and done["inputs"] == {"tokens": ws.stage_hash("tokens")}
            and (ws.model / "config.json").is_file()
            and saved_config(ws) == cfg
        )
        if up_to_date:
            model = ws.read_manifest("model") or {}
            return False, f"step {done['counts']['step']}, model in {ws.model} ({model.get('source', '?')})"
        r = train(ws, cfg, fresh=True)
        val = f", val loss {r.val_loss:.3f}" if r.val_loss is not None else ""
        bpb = f", {r.val_bpb:.3f} bits/byte" if r.val_bpb is not None else ""
        return True, f"{r.step} steps, train loss {r.train_loss:.3f}{val}{bpb}"

    def sft_config(self):
        from roost.train.sft import SFTConfig

        c = self.cfg
        return SFTConfig.make(
            {
                "seq_len": c.seq_len,
                "device_batch": c.device_batch,
                "minutes": c.sft_minutes,
                "steps": c.sft_steps,
                "eval_tokens": c.eval_tokens,
                "threads": "auto",
            },
            {"min_shared_words": c.sft_min_shared_words},
        )

    def sft(self) -> tuple[bool, str]:
        from roost.train.sft import SFT_SOURCE, load_pretrained, saved_sft_config, sft

        ws, cfg = self.ws, self.sft_config()
        if cfg.train.minutes is None and cfg.train.steps is None:
            return False, "skipped (no SFT budget)"
        # what SFT records as its inputs: the corpus, the tokenizer and the pretrained weights it started from
        inputs = {
            "corpus": ws.stage_hash("corpus"),
            "tokenizer": ws.stage_hash("tokenizer"),
            "pretrained": load_pretrained(ws).weights_hash,
        }
        model = ws.read_manifest("model") or {}
        if (
            model.get("source") == SFT_SOURCE
            and ws.up_to_date("model", inputs)
            and model.get("sft") == cfg.sft_dict()
            and same_run(saved_sft_config(ws).train, cfg.train)
        ):
            return False, f"chat model in {ws.model}, {model['counts']['steps']} steps"
        r = sft(ws, cfg, fresh=True)
        val = f", val loss {r.val_loss:.3f}" if r.val_loss is not None else ""
        return True, f"{r.step} steps on conversations from reply threads{val}"

    def retriever(self) -> tuple[bool, str]:
        from roost.search.embed import RETRIEVER_FILE
        from roost.search.retriever import RetrieverConfig, train_workspace_retriever

        if self.cfg.retriever_steps <= 0:
            return False, "skipped (--retriever-steps 0)"
        # training replaces workspace/model whole, so a retriever there belongs to the current model
        if (self.ws.model / RETRIEVER_FILE).is_file():
            return False, f"retriever in {self.ws.model / RETRIEVER_FILE}"
        try:
            r = train_workspace_retriever(
                self.ws,
                RetrieverConfig(
                    steps=self.cfg.retriever_steps,
                    query_steps=self.cfg.retriever_query_steps,
                    max_pairs=self.cfg.retriever_pairs,
                    threads="auto",  # as the training stages (roost.threads)
                ),
            )
        except ValueError as e:  # e.g. no pairs to mine in a tiny corpus
            return False, f"skipped: {e}"
        return True, f"{r['pairs']:,} pairs, InfoNCE loss {r['first_loss']:.3f} -> {r['last_loss']:.3f}"

    def index(self) -> tuple[bool, str]:
        from roost.search.build import build_workspace_index
        from roost.search.embed import load_search_model

        ws = self.ws
        model_hash = file_hash(ws.model)
        ran = not ws.up_to_date("index", {"corpus": ws.stage_hash("corpus"), "model": model_hash})
        m = (
            build_workspace_index(ws, load_search_model(ws.model), model_hash=model_hash)
            if ran
            else ws.read_manifest("index")
        )
        c = m["counts"]
        return ran, f"{c['posts']:,} posts, {c['vectors']:,} vectors"

    def ads(self) -> tuple[bool, str]:
        from roost.ads.campaign import parse_campaigns
        from roost.ads.setup import open_store

        ws, path = self.ws, self.sample_dir / "ads.json"
        specs = parse_campaigns(json.loads(path.read_text(encoding="utf-8")), str(path))
        store = open_store(ws)
        have = {r["id"]: (r["advertiser"], r["name"]) for r in store.campaign_rows()}
        if any(s.id in have and have[s.id] != (s.advertiser, s.name) for s in specs):
            # the database holds another sample's campaigns under these ids: start it over
            store.close()
            for suffix in ("", "-wal", "-shm"):
                Path(f"{ws.ads_db}{suffix}").unlink(missing_ok=True)
            store, have = open_store(ws), {}
        try:
            new = [s for s in specs if s.id not in have]
            if new:
                store.add_campaigns(new)
            total = len(store.campaign_rows())
        finally:
            store.close()
        return bool(new), f"{len(new)} campaigns added, {total} in {ws.ads_db}"

    def safety(self) -> tuple[bool, str]:
        """Brand safety from the corpus's own moderation signals (roost ads train-safety), redone when they change."""
        from roost.ads.brand_safety import SafetyProbes, train_from_signals
        from roost.ads.embedder import resolve_embedder
        from roost.ads.setup import record_artifact, safety_path

        ws, path = self.ws, safety_path(self.ws)
        embed, space = resolve_embedder(ws, "auto")
        inputs = {"corpus": ws.stage_hash("corpus")}
        old = None
        if path.is_file():
            try:
                old = SafetyProbes.load(path)
            except UserError:  # probes from an older roost: retrain them
                pass
        if old is not None and old.space == space and old.inputs == inputs:
            return False, f"probes {', '.join(old.names)} in {path}"
        try:
            probes = train_from_signals(ws.corpus, embed, space, threads="auto")
        except ValueError as e:  # a corpus without moderation signals: serve without, and say so
            return False, f"skipped: {e}"
        probes.inputs = inputs
        probes.save(path)
        record_artifact(ws, path.name, "roost demo (roost ads train-safety)", inputs, space=space)
        m = probes.metrics.get("moderation", {})
        held = f", held-out AUC {m['auc']:.3f} against the signals" if m else ""
        return True, f"'moderation' probe from {m.get('flagged', '?')} flagged posts{held}"

    # ---- the end ------------------------------------------------------------------------------

    def summary(self) -> str:
        lines = [f"{'stage':<10} {'':<10} {'seconds':>8}  artifact"]
        for r in self.results:
            lines.append(f"{r.name:<10} {'ran' if r.ran else 'up to date':<10} {r.seconds:>8.1f}  {r.detail}")
        lines.append(f"{'total':<10} {'':<10} {sum(r.seconds for r in self.results):>8.1f}")
        return "\n".join(lines)

    def serve(self, admin_key: str | None = None) -> None:
        """Serve the workspace on cfg.host:cfg.port until interrupted."""
        import uvicorn

        from roost.server.app import ServeConfig, create_app

        admin_key = admin_key or secrets.token_urlsafe(18)
        app = create_app(
            ServeConfig(workspace=self.cfg.workspace, host=self.cfg.host, port=self.cfg.port, admin_key=admin_key)
        )
        url = f"http://{self.cfg.host}:{self.cfg.port}/"
        self.say(
            f"\nroost is serving {self.cfg.workspace}: open {url}\n"
            f"admin key (for /admin/...): {admin_key}\n"
            f"OpenAI API: {url}v1 (model {app.state.roost.config.model_name!r}); Ctrl-C stops\n"
        )
        uvicorn.run(app, host=self.cfg.host, port=self.cfg.port, log_level="warning")


def same_run(saved, wanted) -> bool:
    """Whether a saved TrainConfig ran as long, on the same batches, as the one wanted now."""
    return all(getattr(saved, k) == getattr(wanted, k) for k in ("minutes", "steps", "seq_len", "device_batch"))


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None
