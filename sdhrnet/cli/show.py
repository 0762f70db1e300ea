"""`sdhrnet show`: a grid of network-input crops with their landmarks, plain or augmented, for looking at."""
from __future__ import annotations

import sys
from pathlib import Path

from sdhrnet.cli import cannot_write, multiple_of


def add_arguments(parser, command=None) -> None:
    parser.add_argument("--dataset", required=True, help="300w | wflw | cofw | csv")
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--split", default=None, help="default: the training split")
    parser.add_argument("--augment", action="store_true", help="show training augmentation (scale, rotation, flip)")
    parser.add_argument("--n", type=int, default=16, help="number of samples (default 16)")
    from landmarks.heatmaps import STRIDE

    parser.add_argument("--input-size", type=multiple_of(STRIDE), default=256)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="PNG file to write")


def main(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from landmarks.datasets import DEFAULT_TRAIN_SPLIT, get_info, load_samples

    try:
        if Path(args.out).is_dir():
            raise ValueError(f"cannot write --out {args.out}: it is a folder; name the PNG file to write")
        info = get_info(args.dataset)
        split = args.split or DEFAULT_TRAIN_SPLIT[info.name]
        samples = load_samples(info.name, args.data_root, split)
        if args.n < 1:
            raise ValueError("--n must be at least 1")
        rng = np.random.default_rng(args.seed)
        chosen = sorted(rng.choice(len(samples), size=min(args.n, len(samples)), replace=False).tolist())
        from trainer.torch_data import LandmarkDataset

        ds = LandmarkDataset([samples[i] for i in chosen], info, args.input_size, train=args.augment)
        cols = int(np.ceil(np.sqrt(len(ds))))
        rows = int(np.ceil(len(ds) / cols))
        fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.8 * rows), squeeze=False)
        left = np.zeros(info.num_landmarks, bool)
        left[[a for a, _ in info.flip_pairs]] = True
        for ax in axes.ravel():
            ax.axis("off")
        for k, ax in enumerate(axes.ravel()[:len(ds)]):
            image, pts = ds.crop(k, rng)
            ax.imshow(image)
            # first member of each pair in red, its mirror partner in blue: a flip must keep the colours on their side
            ax.scatter(pts[~left, 0], pts[~left, 1], s=4, c="deepskyblue")
            ax.scatter(pts[left, 0], pts[left, 1], s=4, c="red")
            ax.set_xlim(-0.5, args.input_size - 0.5)  # points pushed out of the crop must not rescale the panel
            ax.set_ylim(args.input_size - 0.5, -0.5)
            ax.set_title(ds.samples[k].sample_id, fontsize=6)
        fig.suptitle(f"{info.name} {split}" + (" (augmented)" if args.augment else ""), fontsize=9)
        fig.tight_layout()
        try:
            # without a suffix matplotlib would add ".png" and write a file of another name than the one printed
            fig.savefig(args.out, dpi=100, format=None if Path(args.out).suffix else "png")
        except OSError as exc:
            raise ValueError(cannot_write("--out", args.out, exc)) from None
        plt.close(fig)
    except (ValueError, OSError) as exc:
        print(f"sdhrnet show: error: {exc}", file=sys.stderr)
        return 2
    print(args.out)
    return 0
