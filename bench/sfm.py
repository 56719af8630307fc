"""Benchmark: `recon process` (pycolmap) against Debian's `colmap` on the same photos, same machine.

For each photo folder (default: the two real captures in ../shared/data/photos) it poses the
photos twice, one after the other on an otherwise idle machine:

- recon: ``recon process PHOTOS --out W/recon`` as a user runs it (its defaults: one SIMPLE_RADIAL
  camera, SIFT with affine shapes on images of at most 1600 px, exhaustive matching up to 300
  images, incremental mapping; all cores);
- colmap: ``colmap feature_extractor`` / ``exhaustive_matcher`` / ``mapper`` with COLMAP's defaults
  and one shared camera (``--ImageReader.single_camera 1``, as ``ns-process-data`` runs it), on the
  CPU with all cores. ``--colmap-args`` adds options to every COLMAP command that accepts them.

One JSON line per (folder, tool): registered images of all, 3D points, mean reprojection error
(px), mean track length, the focal length found (px), wall seconds (a tool that builds no model
registers 0); then one line per folder with
the ratios recon / colmap of registered images and of seconds (target: registered >= 1, seconds
<= 1) and how many more images recon registered. Both models are read with pycolmap and scored by the same code.

    python bench/sfm.py [--folders lund,skull] [--work DIR] [--colmap-args "..."]

`colmap` comes from Debian (``apt-get install colmap``; `make bench` installs it). Without it the
colmap rows are skipped with a notice and only recon's are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PHOTOS = Path(os.environ.get("RECON_SHARED_DATA", REPO.parent / "shared" / "data")) / "photos"
FOLDERS = {"lund": PHOTOS / "opensfm_lund" / "images",
           "skull": PHOTOS / "skull_cameramoves_flash" / "images"}


def emit(record: dict) -> None:
    print(json.dumps(record), flush=True)


def timed(command: list[str], log: Path) -> float:
    """Run ``command`` (its output appended to ``log``); its wall seconds. Fails loudly."""
    start = time.perf_counter()
    with open(log, "a") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed (exit {done.returncode}); see {log}")
    return time.perf_counter() - start


def run_recon(photos: Path, work: Path) -> tuple[Path, float]:
    out = work / "recon"
    seconds = timed([sys.executable, "-m", "recon.cli", "process", str(photos), "--out", str(out),
                     "--quiet", "--force"], work / "recon.log")
    return out / "sparse" / "0", seconds


def run_colmap(photos: Path, work: Path, extra: list[str]) -> tuple[Path, float]:
    out = work / "colmap"
    shutil.rmtree(out, ignore_errors=True)
    (out / "sparse").mkdir(parents=True)
    database = str(out / "database.db")
    log = work / "colmap.log"
    commands = [
        ["feature_extractor", "--database_path", database, "--image_path", str(photos),
         "--ImageReader.single_camera", "1", "--SiftExtraction.use_gpu", "0"],
        ["exhaustive_matcher", "--database_path", database, "--SiftMatching.use_gpu", "0"],
        ["mapper", "--database_path", database, "--image_path", str(photos),
         "--output_path", str(out / "sparse")],
    ]
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    seconds = 0.0
    for command in commands:
        accepted = [a for a in extra if _accepts(command[0], a)]
        start = time.perf_counter()
        with open(log, "a") as stream:
            done = subprocess.run(["colmap", *command, *accepted], stdout=stream,
                                  stderr=subprocess.STDOUT, env=env)
        seconds += time.perf_counter() - start
        # The mapper exits 1 when it finds no initial pair: a result (nothing registered).
        if done.returncode != 0 and command[0] != "mapper":
            sys.exit(f"colmap {command[0]} failed (exit {done.returncode}); see {log}")
    models = sorted((out / "sparse").iterdir())
    return (_largest(models) if models else None), seconds


def _accepts(command: str, option: str) -> bool:
    """Whether an extra ``--Section.name=value`` option belongs to ``command``."""
    section = option.lstrip("-").split(".")[0]
    return section in {"feature_extractor": ("ImageReader", "SiftExtraction"),
                       "exhaustive_matcher": ("SiftMatching", "ExhaustiveMatching"),
                       "mapper": ("Mapper",)}[command]


def _largest(models: list[Path]) -> Path:
    import pycolmap

    return max(models, key=lambda m: pycolmap.Reconstruction(str(m)).num_reg_images())


def scores(model: Path | None, total: int) -> dict:
    """What a reconstruction achieved, by the same code for both tools (None: no model)."""
    import pycolmap

    if model is None:
        return {"registered": 0, "images": total, "points": 0, "reprojection_error_px": None,
                "track_length": None, "cameras": 0, "focal_px": None}
    rec = pycolmap.Reconstruction(str(model))
    focal = [float(c.mean_focal_length()) for c in rec.cameras.values()]
    return {"registered": rec.num_reg_images(), "images": total,
            "points": rec.num_points3D(),
            "reprojection_error_px": round(float(rec.compute_mean_reprojection_error()), 4),
            "track_length": round(float(rec.compute_mean_track_length()), 3),
            "cameras": len(focal), "focal_px": round(sum(focal) / len(focal), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--folders", default="lund,skull",
                        help=f"comma-separated names ({', '.join(FOLDERS)}) or photo folder paths")
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp)")
    parser.add_argument("--colmap-args", default="", help="extra --Section.option=value for colmap")
    args = parser.parse_args()
    from recon.data.dataset import list_images

    have_colmap = shutil.which("colmap") is not None
    if not have_colmap:
        print("# colmap not found (apt-get install colmap, or `make bench`): colmap rows skipped",
              file=sys.stderr)
    work_root = args.work or Path(tempfile.mkdtemp(prefix="recon-bench-sfm-"))
    for name in args.folders.split(","):
        photos = FOLDERS.get(name, Path(name))
        if not photos.is_dir():
            sys.exit(f"{photos} is not a folder of photos")
        total = len(list_images(photos))
        work = work_root / name
        work.mkdir(parents=True, exist_ok=True)
        model, seconds = run_recon(photos, work)
        recon = {"bench": "sfm", "folder": name, "tool": "recon", **scores(model, total),
                 "seconds": round(seconds, 1)}
        emit(recon)
        if not have_colmap:
            continue
        model, seconds = run_colmap(photos, work, args.colmap_args.split())
        colmap = {"bench": "sfm", "folder": name, "tool": "colmap 3.8", **scores(model, total),
                  "seconds": round(seconds, 1)}
        emit(colmap)
        emit({"bench": "sfm", "folder": name, "summary": True,
              "registered_more": recon["registered"] - colmap["registered"],
              "registered_ratio": ratio(recon["registered"], colmap["registered"]),
              "seconds_ratio": ratio(recon["seconds"], colmap["seconds"]),
              "points_ratio": ratio(recon["points"], colmap["points"])})


def ratio(a: float, b: float) -> float | None:
    """a / b, or None when b is 0 (COLMAP built nothing)."""
    return round(a / b, 3) if b else None


if __name__ == "__main__":
    main()
