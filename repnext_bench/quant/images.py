"""Images for calibration and evaluation, prepared as RepNeXt's ImageNet evaluation does:
resize the shorter side to 256/224 of the input side (bicubic), crop the centre, scale to
[0, 1] and normalize with ImageNet's mean and std. Without a folder, calibration uses
synthetic inputs (seeded standard normal, the distribution of normalized images' values),
and every result says so: they say nothing about accuracy."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from . import DEFAULT_CALIBRATION_SIZE

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
RESIZE_RATIO = 256 / 224  # the resize before the centre crop, as the RepNeXt (and RepViT) evaluation
SUFFIXES = (".jpg", ".jpeg", ".png")
CLASS_MAP = "class_index.json"  # the class-index map an --eval folder may hold
SYNTHETIC_EVAL_SIZE = 64
NUM_CLASSES = 1000  # every RepNeXt variant's head: ImageNet-1k


class ImageFolderError(ValueError):
    """A calibration or evaluation folder that cannot be used (said in one line)."""


def prepare_image(path: Path, resolution: int) -> np.ndarray:
    """One image as a (3, resolution, resolution) float32 array, normalized."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            short = int(round(resolution * RESIZE_RATIO))
            width, height = image.size
            scale = short / min(width, height)
            size = (max(short, round(width * scale)), max(short, round(height * scale)))
            image = image.resize(size, Image.BICUBIC)
            left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
            image = image.crop((left, top, left + resolution, top + resolution))
            pixels = np.asarray(image, dtype=np.float32) / 255.0
    except OSError as exc:
        raise ImageFolderError(f"{path} is not a readable JPEG or PNG image ({exc})") from exc
    return ((pixels - MEAN) / STD).transpose(2, 0, 1).copy()


def _images_under(folder: Path) -> list[Path]:
    """The JPEG and PNG files under ``folder`` in path order, hidden files and folders left out
    (``.ipynb_checkpoints``, macOS's ``._x.jpg``)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def list_images(folder: Path) -> list[Path]:
    """Every JPEG and PNG under ``folder``, in a stable order."""
    if not folder.is_dir():
        raise ImageFolderError(f"{folder} is not a folder")
    found = _images_under(folder)
    if not found:
        raise ImageFolderError(f"{folder} holds no JPEG or PNG image (looked for {', '.join(SUFFIXES)})")
    return found


def spread(items: list, count: int | None) -> list:
    """``count`` of ``items`` spread evenly over them (all when ``count`` is None or larger): an
    ImageNet-style tree sorted by path gives every class its share, not the first class all."""
    if count is None or count >= len(items):
        return list(items)
    return [items[index * len(items) // count] for index in range(count)]


def files_hash(paths: list[Path], root: Path) -> str:
    """SHA-256 over the files' paths (relative to ``root``) and bytes: the calibration set's identity."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class CalibrationSet:
    """Where the calibration inputs come from: ``folder`` (``size`` of its images, spread over it)
    or, when None, ``size`` synthetic inputs from ``seed``."""

    folder: str | None
    size: int = DEFAULT_CALIBRATION_SIZE
    seed: int = 0

    def files(self) -> list[Path]:
        return list(self._files)

    @cached_property
    def _files(self) -> list[Path]:  # the folder walked once per set, not per cache key and per read
        return spread(list_images(Path(self.folder)), self.size) if self.folder else []

    def identity(self) -> dict:
        """What the quantized artifacts' cache key holds of the calibration: its source, size and hash."""
        return dict(self._identity)

    @cached_property
    def _identity(self) -> dict:  # the files hashed once per set (each stream's session asks again)
        if not self.folder:
            return {"calibration": "synthetic", "calibration_size": self.size, "calibration_seed": self.seed}
        return {"calibration": "folder", "calibration_size": len(self._files),
                "calibration_sha256": files_hash(self._files, Path(self.folder))}

    def describe(self) -> dict:
        """What a result says of its calibration."""
        found = self.identity()
        described = {"source": found["calibration"], "size": found["calibration_size"]}
        if self.folder:
            described.update(folder=self.folder, sha256=found["calibration_sha256"])
        else:
            described["seed"] = self.seed
        return described

    def arrays(self, resolution: int) -> np.ndarray:
        """The calibration inputs, (size, 3, resolution, resolution) float32."""
        if not self.folder:
            return synthetic_inputs(self.size, resolution, self.seed + 1)
        return np.stack([prepare_image(path, resolution) for path in self.files()])


def synthetic_inputs(count: int, resolution: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, 3, resolution, resolution), dtype=np.float32)


def check_calibration(folder: Path | None, size: int) -> tuple[CalibrationSet, str | None]:
    """The calibration set of ``--calibration`` and ``--calibration-size``, every image it takes
    decoded now (one line if one cannot be), so that a sweep does not find out case by case;
    and a note when the folder holds fewer images than asked."""
    if folder is None:
        return CalibrationSet(None, size), None
    found = CalibrationSet(str(folder.resolve()), size)
    files = found.files()
    for path in files:
        check_image(path)
    note = (f"--calibration {folder} holds {len(files)} images: calibrating on those {len(files)}, not "
            f"--calibration-size {size}") if len(files) < size else None
    return found, note


def check_image(path: Path) -> None:
    """One line if ``path`` is not an image this tool can read."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()  # decodes it all (verify() reads no JPEG data)
    except Exception as exc:  # Pillow raises several kinds for a broken file
        raise ImageFolderError(f"{path} is not a readable JPEG or PNG image ({exc})") from exc


@dataclass(frozen=True)
class EvalSet:
    """A labelled folder: the images, their class indices, and where the map came from."""

    paths: list[Path]
    labels: list[int]
    class_map: str  # how folder names became class indices

    def identity(self) -> str:
        """SHA-256 over the images' paths, sizes and modification times, and their labels: what
        the cached reference outputs on them are keyed by (cheap on a large folder)."""
        digest = hashlib.sha256()
        for path, label in zip(self.paths, self.labels):
            stat = path.stat()
            digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}|{label}".encode())
        return digest.hexdigest()


def class_index(folder: Path, names: list[str], map_file: Path | None = None) -> tuple[dict[str, int], str]:
    """folder name -> class index: from ``map_file`` or the folder's class_index.json (either
    {"n01440764": 0, ...} or Keras' {"0": ["n01440764", "tench"], ...}); else folder names that
    are integers; else, for the 1000 folders of ImageNet's validation set, their sorted order."""
    path = map_file or (folder / CLASS_MAP)
    if path.is_file():
        try:
            data = json.loads(path.read_text())
            mapping = ({str(v[0]): int(k) for k, v in data.items()} if all(isinstance(v, list) for v in data.values())
                       else {str(k): int(v) for k, v in data.items()})
        except (ValueError, TypeError, AttributeError, IndexError, KeyError) as exc:
            raise ImageFolderError(f"{path} is not a class-index map (folder name -> index, or Keras' "
                                   f"index -> [folder name, label]): {exc}") from exc
        missing = [name for name in names if name not in mapping]
        if missing:
            raise ImageFolderError(f"{path} has no class index for the folder(s) {', '.join(missing[:5])}")
        return mapping, str(path)
    if map_file is not None:
        raise ImageFolderError(f"--class-map {map_file} is not a file")
    if all(name.isdigit() for name in names):
        return {name: int(name) for name in names}, "folder names are class indices"
    if len(names) == 1000:
        return {name: index for index, name in enumerate(sorted(names))}, "sorted folder names (ImageNet's order)"
    lower = f" (are the classes one level down, in {folder / names[0]}?)" if len(names) == 1 else ""
    raise ImageFolderError(f"{folder}: cannot tell the class index of its {len(names)} class folders{lower}: add "
                           f"{CLASS_MAP} (folder name -> index), name the folders by index, or use all 1000 classes")


def eval_set(folder: Path, map_file: Path | None = None, size: int | None = None,
             num_classes: int = NUM_CLASSES) -> EvalSet:
    """The images of an ImageNet-style folder (one subfolder per class) with their labels;
    ``size`` of them spread evenly over the folder (all when None)."""
    if not folder.is_dir():
        raise ImageFolderError(f"{folder} is not a folder")
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise ImageFolderError(f"{folder} has no class subfolders (expected ImageNet's layout: one folder "
                               "per class, the images in it)")
    mapping, source = class_index(folder, classes, map_file)
    outside = sorted({mapping[name] for name in classes if not 0 <= mapping[name] < num_classes})
    if outside:
        raise ImageFolderError(f"{folder}: class indices {outside[:5]} are outside the model's 0-{num_classes - 1}")
    pairs = [(path, mapping[name]) for name in classes for path in _images_under(folder / name)]
    if not pairs:
        raise ImageFolderError(f"{folder} holds no JPEG or PNG image in its class folders")
    chosen = spread(pairs, size)
    return EvalSet([p for p, _ in chosen], [label for _, label in chosen], source)
