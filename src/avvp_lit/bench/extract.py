"""`avvp-bench extract`: videos/s of ``avvp-extract`` and where the time goes.

Runs the real pipeline (:func:`avvp_lit.extract.pipeline.extract`) on generated clips
with full-size extractors (CLIP ViT-L/14's image tower, laion-clap's HTS-AT tiny,
R(2+1)D-18) of random weights, which take the time real weights take; ``--weights``
uses real ones instead.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from avvp_lit.extract.weights import use_offline_hub
from avvp_lit.utils.memory import reuse_freed_memory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="avvp-bench extract", description=__doc__)
    parser.add_argument("--videos", type=int, default=3, help="generated clips")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", default="640x360", help="frame size of the clips, WxH")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--no-labels", action="store_true", help="features only")
    parser.add_argument("--weights", type=Path, help="real weights (default: random, full size)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=["32", "bf16-mixed"], default="32")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    reuse_freed_memory()

    with tempfile.TemporaryDirectory(prefix="avvp-bench-extract-") as tmp:
        work = Path(tmp)
        weights = args.weights
        if weights is None:
            weights = work / "weights"
            (weights / "huggingface").mkdir(parents=True)
        use_offline_hub(weights)

        from avvp_lit.classes import CLASSES
        from avvp_lit.extract.pipeline import STAGES, ExtractSettings, extract
        from avvp_lit.extract.stand_ins import random_weights, write_video

        if args.weights is None:
            print("building full-size extractors with random weights ...", flush=True)
            random_weights(weights, full_size=True)
        width, height = (int(v) for v in args.size.split("x"))
        videos = work / "videos"
        videos.mkdir()
        for i in range(args.videos):
            write_video(
                videos / f"clip{i:03d}.mp4",
                seconds=args.seconds,
                fps=args.fps,
                size=(width, height),
            )
        labels = None
        if not args.no_labels:
            labels = work / "weak.csv"
            rows = "".join(f"clip{i:03d}\t{CLASSES[i % 25]}\n" for i in range(args.videos))
            labels.write_text("filename\tevent_labels\n" + rows)
        settings = ExtractSettings(
            labels=labels,
            device=args.device,
            precision=args.precision,
            batch_windows=args.batch,
            workers=args.workers,
        )
        result = extract([videos], work / "out", settings, weights=weights, progress=False)

    model_s = sum(result.seconds[s] for s in STAGES if s != "load")
    run_s = result.wall_s - result.seconds["load"]
    per_clip = run_s / max(result.windows, 1)
    print(
        f"{result.windows} clips of {args.seconds:g} s at {args.size}, {args.fps} fps; "
        f"device {args.device}, precision {args.precision}, batch {args.batch}, "
        f"workers {args.workers}, pseudo labels {'no' if args.no_labels else 'yes'}"
    )
    print(
        f"wall {result.wall_s:.1f} s (loading the models {result.seconds['load']:.1f} s); "
        f"after loading {run_s:.1f} s: {result.windows / run_s:.2f} clips/s, "
        f"{per_clip:.2f} s per clip"
    )
    for stage in STAGES[1:]:
        seconds = result.seconds[stage]
        where = "main process"
        if stage == "decode":
            where = "decode and prepare, in the workers" if args.workers else "decode and prepare"
        print(
            f"  {stage:9s} {seconds:7.2f} s  {seconds / max(result.windows, 1):6.2f} s/clip  "
            f"{100 * seconds / max(model_s, 1e-9):5.1f} %  ({where})"
        )
    return 0
