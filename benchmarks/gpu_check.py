"""Paper-size passes on a CUDA GPU: ProgSwin-UNETR forward at 1 x 3 x 128^3 and DMMGNet forward +
backward on 10 slices of 112 x 112 (liver/tumor x T2/PV) at the paper preset's batch, each with
its median time and peak GPU memory; then a short DMMGNet fit through ``SurvivalNetTrainer`` on
the GPU (``training.device``), whose checkpoint must load on the CPU with identical outputs.

Needs only torch, MONAI, pydantic and torchsurv (not the whole stack), so it runs on a lent
accelerator with those carried as wheels. Prints one JSON object; ``--out`` also writes it.

    python benchmarks/gpu_check.py --out benchmarks/results/gpu_check.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from hccprog.models.dmmgnet import DMMGNet, DMMGNetConfig
from hccprog.models.progswin import ProgSwinConfig, ProgSwinUNETR


def _timed(fn, repeats: int) -> tuple[float, float]:
    """(median seconds over ``repeats`` after one warm-up, peak GPU memory in MiB)."""
    fn()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), torch.cuda.max_memory_allocated() / 2**20


def progswin_forward(dev: torch.device, repeats: int) -> dict:
    # the paper preset's network (hccprog.models.progswin.PRESETS["paper"])
    cfg = ProgSwinConfig(feature_size=24, window_size=7, norm="instance", dropout=0.1)
    net = ProgSwinUNETR(cfg, streams=3, channels=1).to(dev).eval()
    x = torch.rand(1, 3, 1, 128, 128, 128, device=dev)

    def fwd():
        with torch.no_grad():
            return net(x)

    sec, peak = _timed(fwd, repeats)
    return {"input": [1, 3, 128, 128, 128], "output": list(fwd().shape), "median_seconds": round(sec, 4),
            "peak_gpu_mib": round(peak, 1), "parameters": sum(p.numel() for p in net.parameters())}


def dmmgnet_step(dev: torch.device, batch: int, repeats: int) -> dict:
    net = DMMGNet(DMMGNetConfig(), streams=2, channels=2).to(dev).train()  # defaults = the paper preset
    x = torch.rand(batch, 1, 2, 10, 2, 112, 112, device=dev)
    opt = torch.optim.Adam(net.parameters(), lr=1e-4)

    def step():
        opt.zero_grad()
        out = net(x)
        (out[:, 0].sum() + out[:, 1].sum()).backward()
        opt.step()

    sec, peak = _timed(step, repeats)
    return {"input": [batch, 1, 2, 10, 2, 112, 112], "median_seconds": round(sec, 4), "peak_gpu_mib": round(peak, 1),
            "parameters": sum(p.numel() for p in net.parameters())}


def trainer_on_gpu() -> dict:
    """A tiny DMMGNet fitted on the GPU; its CPU checkpoint reproduces the GPU outputs."""
    from hccprog.training.deep import SurvivalNetTrainer, TrainConfig
    from hccprog.training.objectives import CoxProgressionObjective

    rng = np.random.default_rng(0)
    n = 48
    x = rng.random((n, 1, 2, 6, 2, 32, 32)).astype(np.float16)
    t = rng.uniform(10, 800, n)
    e = (rng.random(n) < 0.7).astype(int)
    cfg = DMMGNetConfig(widths=(8, 8, 16, 16), blocks=(1, 1, 1, 1), nodes=4, k=2, hidden=8)
    tr = SurvivalNetTrainer(lambda: DMMGNet(cfg, streams=2, channels=2),
                            TrainConfig(epochs=3, batch_size=16, augment=False, device="cuda"),
                            CoxProgressionObjective(365.25))
    tr.fit(x, t, e)
    # TF32 (PyTorch's default for cuDNN convolutions) rounds to 10-bit mantissas: compare in full fp32
    flags = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        gpu_out = tr.outputs(x)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags
    cpu_net = DMMGNet(cfg, streams=2, channels=2)
    cpu_net.load_state_dict(tr.state_dict())
    cpu_net.eval()
    with torch.no_grad():
        cpu_out = cpu_net(torch.as_tensor(x.astype(np.float32))).numpy()
    return {"device": str(tr.device_), "epochs": len(tr.history_),
            "max_abs_output": float(np.abs(cpu_out).max()),
            "max_abs_diff_gpu_fp32_vs_cpu_checkpoint": float(np.abs(gpu_out - cpu_out).max())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU: this check runs on a GPU machine only")
    dev = torch.device("cuda")
    result = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "precision": "float32",
              "progswin_paper_forward": progswin_forward(dev, args.repeats),
              "dmmgnet_paper_train_step": [dmmgnet_step(dev, b, args.repeats) for b in (2, 8)],
              "trainer_on_gpu": trainer_on_gpu()}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
