"""Training speed on CPU: samples/s of one optimisation step of every stage, with and without channels_last (or
in fp32 and under bf16 autocast, `--precisions fp32 bf16`), measured side by side in one run.

Stages (the trainer's own step functions, optimisers and settings of the `cpu` preset):
  supernet  trainer.slim.slimming_step on the HRSuperNet, alternating weight / alpha updates (alpha_every=2)
  s-hrnet   trainer.teacher.supervised_step on the slimmed s-hrnet-300w net
  teacher   trainer.teacher.supervised_step on HRNetV2-W18
  distill   trainer.distill.distill_step: two s-hrnet-300w students, the frozen teacher, independent masks

For every stage each variant (memory format x precision) gets its own copy of the same initial weights and is timed in
alternating rounds (channels_last, then NCHW, then again ...), so load from other processes hits both alike;
the figure is the median step time (the "steps" column says how many). Warm-up steps are excluded; the
first step of a network builds the oneDNN kernels and costs several ordinary steps. Batches are real 300W crops (afw +
helen/trainset through LandmarkDataset, augmented, prepared before timing) when the data is there, else
random tensors; the table says which. Data loading is not timed (bench/loader.py measures it).

    .venv/bin/python bench/train_speed.py                       # input 128, batch 16, all stages
    .venv/bin/python bench/train_speed.py --quick               # ~1 minute on an idle 2-core machine
    .venv/bin/python bench/train_speed.py --input-size 128 256  # also at the paper's input size (slow)
    .venv/bin/python bench/train_speed.py --stages supernet distill --threads 2 --json out.json
    .venv/bin/python bench/train_speed.py --formats channels_last --precisions fp32 bf16 --threads 1
                                       # does this CPU gain from bf16? (`precision=auto` asks for bf16 instructions)
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from pathlib import Path

import torch

from sdhrnet.train_config import make_config
from trainer.distill import distill_step
from trainer.engine import autocast, degradation_generator
from trainer.nets import blocks
from trainer.nets import TEACHER, build_network
from trainer.slim import make_optimizers, slimming_step
from trainer.teacher import supervised_step

REPO = Path(__file__).resolve().parents[1]
STAGES = ("supernet", "s-hrnet", "teacher", "distill")
FORMATS = (("channels_last", torch.channels_last), ("nchw", torch.contiguous_format))


def real_batches(data_root: Path, size: int, batch: int, count: int, limit: int) -> list[dict] | None:
    """`count` augmented training batches of real 300W crops, or None when the data is not there."""
    from landmarks.datasets import get_info, load_samples
    from trainer.torch_data import LandmarkDataset

    if not data_root.is_dir():
        return None
    try:
        samples = load_samples("300w", data_root, "afw+helen/trainset")
    except Exception:  # noqa: BLE001 - any reader problem: fall back to random tensors
        return None
    if len(samples) < batch:
        return None
    g = torch.Generator().manual_seed(0)
    pick = torch.randperm(len(samples), generator=g)[:min(limit, len(samples))].tolist()
    ds = LandmarkDataset([samples[i] for i in pick], get_info("300w"), size, train=True, seed=0).build_cache(threads=2)
    out = []
    for b in range(count):
        idx = [(b * batch + j) % len(ds) for j in range(batch)]
        items = [ds[i] for i in idx]
        out.append({"image": torch.stack([it["image"] for it in items]),
                    "heatmaps": torch.stack([it["heatmaps"] for it in items])})
    return out


def random_batches(size: int, batch: int, count: int, num_landmarks: int = 68) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    return [{"image": torch.randn(batch, 3, size, size, generator=g),
             "heatmaps": torch.rand(batch, num_landmarks, size // 4, size // 4, generator=g)} for _ in range(count)]


class Runner:
    """One stage in one memory format and precision: models, optimisers, and a step(images, heatmaps, i) closure."""

    def __init__(self, stage: str, fmt, cfg, device, init: dict, precision: str = "fp32"):
        self.fmt = fmt
        self.precision = precision
        self.device = device
        self.i = 0
        models = {k: copy.deepcopy(m).to(device, memory_format=fmt) for k, m in init.items()}
        if stage == "supernet":
            net = models["net"].train()
            opt_w, opt_a = make_optimizers(net, cfg)
            self.fn = lambda x, y, i: slimming_step(net, x, y, opt_w, opt_a,
                                                    update_alpha=i % cfg.alpha_every == cfg.alpha_every - 1,
                                                    l1_lambda=cfg.l1_lambda)
        elif stage in ("s-hrnet", "teacher"):
            net = models["net"].train()
            opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
            self.fn = lambda x, y, i: supervised_step(net, x, y, opt)
        elif stage == "distill":
            students = [models["s1"].train(), models["s2"].train()]
            teacher = models["teacher"].eval()
            for p in teacher.parameters():
                p.requires_grad_(False)
            opts = [torch.optim.Adam(s.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay) for s in students]
            self.fn = lambda x, y, i: distill_step(students, opts, teacher, x, y, cfg,
                                                   (degradation_generator(cfg, 0, i, 0),
                                                    degradation_generator(cfg, 0, i, 1)))
        else:
            raise ValueError(stage)

    def step(self, batch: dict) -> float:
        images = batch["image"].to(self.device).contiguous(memory_format=self.fmt)
        heatmaps = batch["heatmaps"].to(self.device)
        blocks.MEMORY_FORMAT = self.fmt  # the networks convert their input to this format
        t = time.perf_counter()
        with autocast(self.precision, self.device):  # as trainer.engine wraps each step
            self.fn(images, heatmaps, self.i)  # every step function calls .item() on its losses: synchronous
        self.i += 1
        return time.perf_counter() - t


def initial_models(stage: str, num_landmarks: int = 68) -> dict:
    torch.manual_seed(0)
    if stage == "supernet":
        return {"net": build_network("hrsupernet", num_landmarks)}
    if stage == "s-hrnet":
        return {"net": build_network("s-hrnet-300w", num_landmarks)}
    if stage == "teacher":
        return {"net": build_network(TEACHER, num_landmarks)}
    s1 = build_network("s-hrnet-300w", num_landmarks)
    return {"s1": s1, "s2": copy.deepcopy(s1), "teacher": build_network(TEACHER, num_landmarks)}


def bench_stage(stage: str, cfg, device, batches: list[dict], warmup: int, rounds: int, per_round: int,
                variants, seconds: float, max_rounds: int = 20) -> dict:
    """`warmup` untimed steps per format, then alternating rounds of `per_round` steps per format: at least
    `rounds` of them, more while the timed part has lasted less than `seconds` (at most `max_rounds`)."""
    init = initial_models(stage)
    runners = {name: Runner(stage, fmt, cfg, device, init, precision) for name, fmt, precision in variants}
    del init
    times: dict[str, list[float]] = {name: [] for name in runners}
    k = 0
    for name, r in runners.items():  # warm-up: allocator, oneDNN primitive caches, Adam state
        for _ in range(warmup):
            r.step(batches[k % len(batches)])
            k += 1
    start = time.perf_counter()
    done = 0
    while done < rounds or (done < max_rounds and time.perf_counter() - start < seconds):
        for name, r in runners.items():
            for _ in range(per_round):
                times[name].append(r.step(batches[k % len(batches)]))
                k += 1
        done += 1
    out = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        out[name] = {"steps": len(ts), "median_s": med, "samples_per_s": cfg.batch_size / med,
                     "mean_samples_per_s": cfg.batch_size * len(ts) / sum(ts)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: all cores)")
    parser.add_argument("--input-size", type=int, nargs="+", default=[128], help="one or more, e.g. 128 256")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    parser.add_argument("--formats", nargs="+", choices=[n for n, _ in FORMATS], default=[n for n, _ in FORMATS])
    parser.add_argument("--precisions", nargs="+", choices=["fp32", "bf16"], default=["fp32"],
                        help="bf16: the steps under bf16 autocast, as precision=bf16 trains")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per stage and format")
    parser.add_argument("--rounds", type=int, default=2, help="minimum alternating timed rounds per stage")
    parser.add_argument("--steps", type=int, default=1, help="timed steps per round and format")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="keep adding rounds while a stage's timed part is shorter than this")
    parser.add_argument("--quick", action="store_true", help="1 warm-up step, 1 timed round, no time budget")
    parser.add_argument("--data-root", default=str((REPO / ".." / "shared" / "data" / "300w").resolve()))
    parser.add_argument("--random-data", action="store_true", help="random tensors even if the data is there")
    parser.add_argument("--flush-denormal", action="store_true",
                        help="torch.set_flush_denormal(True) (the trainer does not; the Gaussian targets hold denormals)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.flush_denormal:
        torch.set_flush_denormal(True)
    if args.quick:
        args.warmup, args.rounds, args.steps, args.seconds = 1, 1, 1, 0.0
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    device = torch.device(args.device)
    variants = [(n if len(args.precisions) == 1 else f"{n} {p}", f, p)
                for n, f in FORMATS if n in args.formats for p in args.precisions]
    names = [v[0] for v in variants]

    results = []
    print(f"torch {torch.__version__}, device {device}, {threads} threads, batch {args.batch}, "
          f"{args.warmup} warm-up + >= {args.rounds}x{args.steps} timed steps per stage and format "
          f"(more rounds within {args.seconds:.0f} s), "
          f"flush denormal {args.flush_denormal}, load average {os.getloadavg()[0]:.2f}")
    for size in args.input_size:
        cfg = make_config("cpu", "300w", {"input_size": size, "batch_size": args.batch})
        n_batches = 4
        batches = None if args.random_data else real_batches(Path(args.data_root), size, args.batch, n_batches,
                                                             limit=n_batches * args.batch)
        source = f"real 300W crops ({args.data_root})" if batches else "random tensors"
        batches = batches or random_batches(size, args.batch, n_batches)
        print(f"\ninput {size} (heatmaps {size // 4}), data: {source}")
        head = f"{'stage':<9}" + "".join(f" {n + ' samples/s':>24}" for n in names)
        if len(names) == 2:
            head += f" {names[0] + ' / ' + names[1]:>21}"
        print(head, flush=True)
        for stage in args.stages:
            t0 = time.perf_counter()
            r = bench_stage(stage, cfg, device, batches, args.warmup, args.rounds, args.steps, variants, args.seconds)
            line = f"{stage:<9}" + "".join(
                f" {r[n]['samples_per_s']:>11.1f} ({r[n]['median_s'] * 1e3:6.0f} ms/step)" for n in names)
            ratio = None
            if len(names) == 2:
                ratio = r[names[0]]["samples_per_s"] / r[names[1]]["samples_per_s"]
                line += f" {ratio:>20.2f}x"
            print(line + f"   [{time.perf_counter() - t0:.0f} s]", flush=True)
            results.append({"stage": stage, "input_size": size, "batch": args.batch, "threads": threads,
                            "device": str(device), "data": "real" if source.startswith("real") else "random",
                            **{n: {k: round(v, 4) for k, v in r[n].items()} for n in names},
                            "speedup": {"of": names[0], "over": names[1], "ratio": round(ratio, 3)} if ratio else None})
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(json.dumps(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
