"""`avvp-data check ROOT`: validate a dataset folder and report its quirks."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from avvp_lit.data.annotations import AnnotationError, load_split
from avvp_lit.data.check import DatasetReport, check_dataset
from avvp_lit.data.features import FeatureError
from avvp_lit.data.pack import detect_feature_set
from avvp_lit.data.stores import H5_FILENAME, open_store


def _feature_rows(root: Path) -> list[tuple[str, str]]:
    """Feature coverage of each split, when the folder holds a store."""
    if (root / H5_FILENAME).is_file():
        store = open_store(root, None, "h5")
    else:
        try:
            store = open_store(root, detect_feature_set(root).name, "npy")
        except FeatureError:
            return [("features", "no feature store found (annotations only)")]
    rows = [("feature store", f"{store.feature_set.name} at {store.location}")]
    for split in ("train", "val", "test"):
        ids = load_split(root, split).feature_ids
        missing = store.missing(ids)
        text = f"{len(ids) - len(missing)}/{len(ids)} videos present"
        if missing:
            text += f"; missing {len(missing)}: {', '.join(missing[:10])}"
        rows.append((f"features {split}", text))
    return rows


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
    args = parser.parse_args(argv)
    console = Console()
    try:
        report = check_dataset(args.root)
        feature_rows = _feature_rows(args.root)
    except (AnnotationError, FeatureError) as error:
        console.print(f"[red]avvp-data: error:[/red] {error}", highlight=False)
        return 1
    print_report(report, console)
    for name, text in feature_rows:
        console.print(f"{name}: {text}", highlight=False)
    if args.json:
        payload = asdict(report)
        payload["root"] = str(report.root)
        payload["features"] = dict(feature_rows)
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
