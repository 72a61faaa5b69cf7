"""`avvp-data check ROOT`: validate a dataset folder and report its quirks.

It parses every annotation file, counts the quirks of the dense files, opens and
validates every feature array of every listed video (shape, dtype, finiteness, pseudo
labels 0/1; with a progress bar), and reports videos listed in two splits. Exit status 2
when features are missing, unreadable or invalid, or splits share videos.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from avvp_lit.data.annotations import SPLIT_FILES, load_split
from avvp_lit.data.check import DatasetReport, check_dataset
from avvp_lit.data.features import FEATURE_SETS, FeatureError
from avvp_lit.data.pack import complete_feature_set
from avvp_lit.data.stores import H5_FILENAME, FeatureStore, open_store
from avvp_lit.utils.atomic import atomic_write_bytes
from avvp_lit.utils.errors import EXIT_BAD_INPUT, add_debug_flag, first_names, run_cli
from avvp_lit.utils.progress import progress_bar

BAD_SHOWN = 10


def _open_feature_store(root: Path) -> FeatureStore | str:
    """The folder's store, or a sentence saying why there is none."""
    if (root / H5_FILENAME).is_file():
        return open_store(root, None, "h5")
    try:
        return open_store(root, complete_feature_set(root).name, "npy")
    except FeatureError:
        pass
    for spec in FEATURE_SETS.values():
        present = [m.folder for m in spec.modalities if (root / m.folder).is_dir()]
        if present:
            absent = [m.folder for m in spec.modalities if m.folder not in present]
            raise FeatureError(
                f"{root}: incomplete {spec.name} feature layout: missing "
                f"{', '.join(absent)} (present: {', '.join(present)})"
            )
    return "no feature store found (annotations only)"


def check_features(root: Path, *, progress: bool = True) -> tuple[list[tuple[str, str]], list[str]]:
    """Open and validate every feature array of every listed video (shape, dtype,
    finiteness, pseudo labels 0/1). Returns report rows and the problems found."""
    store = _open_feature_store(root)
    if isinstance(store, str):
        return [("features", store)], []
    rows = [("feature store", f"{store.feature_set.name} at {store.location}")]
    problems: list[str] = []
    splits = {
        s: load_split(root, s).feature_ids for s in SPLIT_FILES if (root / SPLIT_FILES[s]).is_file()
    }
    available = store.ids()
    present = {split: [v for v in ids if v in available] for split, ids in splits.items()}
    for split, ids in splits.items():
        missing = [v for v in ids if v not in available]
        text = f"{len(ids) - len(missing)}/{len(ids)} videos present"
        if missing:
            text += f"; missing {len(missing)}: {first_names(missing, BAD_SHOWN)}"
            problems.append(f"{split}: {len(missing)} videos without features")
        rows.append((f"features {split}", text))
    videos = list(dict.fromkeys(v for ids in present.values() for v in ids))
    bad: list[str] = []
    with progress_bar("reading features", total=len(videos), enabled=progress) as bar:
        for video in videos:
            try:
                store.read(video)
            except FeatureError as error:
                bad.append(str(error))
            bar.advance()
    rows.append(("feature files read", f"{len(videos) - len(bad)}/{len(videos)} valid"))
    for text in bad[:BAD_SHOWN]:
        rows.append(("bad feature", text))
    if len(bad) > BAD_SHOWN:
        rows.append(("bad feature", f"... and {len(bad) - BAD_SHOWN} more"))
    if bad:
        problems.append(f"{len(bad)} videos with unreadable or invalid features")
    names = list(splits)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = sorted(set(splits[a]) & set(splits[b]))
            if shared:
                rows.append(
                    (f"shared {a}/{b}", f"{len(shared)} videos: {first_names(shared, BAD_SHOWN)}")
                )
                problems.append(f"{len(shared)} videos in both {a} and {b}")
    return rows, problems


def print_report(report: DatasetReport, console: Console) -> None:
    splits = Table(title=f"LLP annotations in {report.root}")
    for column in ("split", "file", "videos", "labels per video", "md5"):
        splits.add_column(column)
    for split, info in report.splits.items():
        spread = ", ".join(f"{k}: {v}" for k, v in info["labels_per_video"].items())
        splits.add_row(split, info["file"], str(info["videos"]), spread, info["md5"])
    console.print(splits)
    dense = Table(title="dense label files")
    for column in ("labels", "file", "rows", "md5"):
        dense.add_column(column)
    for key, info in report.dense_files.items():
        if info.get("missing"):
            dense.add_row(key, info["file"], "absent", "")
        else:
            note = " (released)" if info["released"] else ""
            dense.add_row(key, info["file"], str(info["rows"]), info["md5"] + note)
    console.print(dense)
    quirks = Table(title="quirks (rows)")
    for column in ("file", "quirk", "count", "examples"):
        quirks.add_column(column)
    for quirk in report.quirks:
        quirks.add_row(quirk.file, quirk.name, str(quirk.count), "\n".join(quirk.examples))
    console.print(quirks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="avvp-data", description="LLP dataset folder tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="validate a dataset folder and report its quirks")
    check.add_argument("root", type=Path)
    check.add_argument("--json", type=Path, default=None, help="also write the report as JSON")
    check.add_argument("--quiet", action="store_true", help="no progress bar")
    add_debug_flag(check)
    args = parser.parse_args(argv)
    console = Console()

    def body() -> int:
        report = check_dataset(args.root)
        feature_rows, problems = check_features(args.root, progress=not args.quiet)
        print_report(report, console)
        for name, text in feature_rows:
            console.print(f"{name}: {text}", highlight=False, soft_wrap=True)
        if args.json:
            payload = asdict(report)
            payload["root"] = str(report.root)
            payload["features"] = [list(row) for row in feature_rows]
            payload["problems"] = problems
            atomic_write_bytes(args.json, json.dumps(payload, indent=2).encode())
        if problems:
            print(f"avvp-data: error: {args.root}: {'; '.join(problems)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        return 0

    return run_cli("avvp-data", body, argv)


if __name__ == "__main__":
    sys.exit(main())
