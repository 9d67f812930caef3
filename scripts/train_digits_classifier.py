"""Train the shipped 8×8 digit classifier (``callbacks/assets/digits_cnn.pt`` + ``digits_cnn.json``).

It is the ``digits`` FID feature extractor (penultimate layer) and the stacked-digits mode classifier.
Trained only on the TRAIN split of ``datamodules.Digits(seed=0)`` (1,438 images); accuracy is reported on
the held-out split (359 images), which is also the reference split of FID / stacked-digits evaluation, both at
the native 8×8 and after the 16/32-px up-sampling the datamodule applies (then resized back to 8×8 by the
extractor). Augmentation: random shifts of ±1 pixel and random up/down-sampling round trips, so the net is
robust to the resize path.

    OMP_NUM_THREADS=1 python scripts/train_digits_classifier.py [--epochs 60] [--seed 0] [--out callbacks/assets]

CPU only, about a minute on one core. Weights are stored as float32 ``state_dict`` (loaded with
``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from callbacks.fid import DigitsCNN, to_digit_input  # noqa: E402
from datamodules.images import Digits  # noqa: E402


def split_tensors(dm: Digits, split: str):
    ds = dm.train_set if split == "train" else dm.val_set
    x, y = ds.__getitems__(list(range(len(ds))))
    return x, y


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """±1-pixel random shifts (zero = background −1 padding) and, for half the batch, a bilinear 8→16/32→8
    round trip as in the datamodule + extractor."""
    n = x.shape[0]
    pad = F.pad(x, (1, 1, 1, 1), value=-1.0)
    dx = torch.randint(0, 3, (n,), generator=g)
    dy = torch.randint(0, 3, (n,), generator=g)
    out = torch.stack([pad[i, :, dy[i]:dy[i] + 8, dx[i]:dx[i] + 8] for i in range(n)])
    rt = torch.rand(n, generator=g) < 0.5
    if rt.any():
        size = 16 if torch.rand((), generator=g) < 0.5 else 32
        up = F.interpolate(out[rt], size=(size, size), mode="bilinear", align_corners=False).clamp(-1, 1)
        out[rt] = to_digit_input(up)
    return out


@torch.no_grad()
def accuracy(net, x, y, size: int = 8) -> float:
    net.eval()
    if size != 8:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(-1, 1)
    return float((net(to_digit_input(x)).argmax(1) == y).double().mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--seed", type=int, default=0, help="seed of the weights / batches (the data split is seed 0)")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--out", type=str, default=str(Path(__file__).resolve().parents[1] / "callbacks" / "assets"))
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    t0 = time.time()

    dm = Digits(image_size=8, val_fraction=0.2, seed=0)
    dm.setup("fit")
    xtr, ytr = split_tensors(dm, "train")
    xva, yva = split_tensors(dm, "val")
    print(f"python {platform.python_version()}, torch {torch.__version__}, {platform.platform()}")
    print(f"train {tuple(xtr.shape)}  held-out {tuple(xva.shape)}  seed {args.seed}")

    g = torch.Generator().manual_seed(args.seed)
    net = DigitsCNN()
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs)
    for epoch in range(args.epochs):
        net.train()
        perm = torch.randperm(len(xtr), generator=g)
        for i in range(0, len(xtr), args.batch_size):
            idx = perm[i:i + args.batch_size]
            loss = F.cross_entropy(net(augment(xtr[idx], g)), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        if (epoch + 1) % 10 == 0:
            print(f"epoch {epoch + 1:3d}  loss {loss.item():.4f}  train acc {accuracy(net, xtr, ytr):.4f}")

    net.eval()
    acc = {f"test_acc_{s}px": accuracy(net, xva, yva, s) for s in (8, 16, 32)}
    acc["train_acc_8px"] = accuracy(net, xtr, ytr)
    print("held-out accuracy:", {k: round(v, 4) for k, v in acc.items()})
    if acc["test_acc_8px"] < 0.97:
        raise SystemExit(f"held-out accuracy {acc['test_acc_8px']:.4f} < 0.97: not saving")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    wpath = out / "digits_cnn.pt"
    torch.save({k: v.detach().float().contiguous() for k, v in net.state_dict().items()}, wpath)
    info = {
        "test_accuracy": acc["test_acc_8px"],
        **acc,
        "n_train": len(xtr), "n_test": len(xva),
        "split": "datamodules.Digits(image_size=8, val_fraction=0.2, seed=0): train = train split, "
                 "test = held-out (val) split",
        "seed": args.seed, "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
        "command": "OMP_NUM_THREADS=1 python scripts/train_digits_classifier.py " + " ".join(sys.argv[1:]),
        "torch": torch.__version__, "python": platform.python_version(),
        "sha256": hashlib.sha256(wpath.read_bytes()).hexdigest(),
        "bytes": wpath.stat().st_size, "feature_dim": net.feature_dim,
        "wall_s": round(time.time() - t0, 1),
    }
    (out / "digits_cnn.json").write_text(json.dumps(info, indent=2) + "\n")
    print(f"wrote {wpath} ({info['bytes']} bytes) and digits_cnn.json in {info['wall_s']} s")


if __name__ == "__main__":
    main()
