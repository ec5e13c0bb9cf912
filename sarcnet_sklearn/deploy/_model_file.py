"""Model files: a fitted SarcNet pipeline plus what is known about it, in two formats.

- ``"joblib"``: one joblib file holding ``{"format", "format_version",
  "metadata", "pipeline"}``, the network trimmed for prediction (no optimizer
  state or history); any pipeline, but loading it unpickles, which can run
  arbitrary code: load only files you trust.
- ``"safe"``: a folder (or a ``.zip``) with ``model.json`` (settings, feature
  names, scaler statistics, metadata) and ``weights.safetensors`` (the
  network's tensors); nothing is unpickled, every setting is checked (type,
  range, consistency with the others and with the weights) before anything is
  built, and every read is bounded. Only pipelines made by
  :func:`make_sarcnet_pipeline`.

:func:`load_model` reads both (and plain joblib files of a pipeline). A path
is read as the safe format when it is a folder or a file that starts as a zip
archive does, and as joblib only when it is neither a zip archive nor named
``.zip``: a ``.zip`` or a folder is never unpickled.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import pickle
import platform
import re
import shutil
import stat
import struct
import tempfile
import warnings
import zipfile
from collections import Counter
from datetime import datetime, timezone
from os import PathLike
from pathlib import Path

import joblib
import numpy as np
import sklearn
import torch
from safetensors import SafetensorError
from skorch import NeuralNet
from skorch.exceptions import DeviceWarning

from .. import __version__
from .._model_formats import FORMATS
from .._pixel_size import model_pixel_size
from ..outputs import write_atomically
from ..pipeline import SarcNetPipeline
from ._pipeline_settings import pipeline_from_settings, pipeline_settings
from ._settings import REGRESSOR_SETTINGS, RENAMED_SETTINGS, STORED_ONLY_IF_SET, check_settings

FORMAT = "sarcnet-sklearn-model"
FORMAT_VERSION = 2
"""Layout version of the model files this package writes; it reads this one and older.

1: safe-format weights in ``weights.pt`` (``torch.save``; no longer read, as reading it
means unpickling); 2: ``weights.safetensors``, ``feature_range`` and ``score_range``
settings, joblib files trimmed for prediction."""

WEIGHTS_FILE = "weights.safetensors"
OLD_WEIGHTS_FILE = "weights.pt"
SETTINGS_FILE = "model.json"
INPUT_KEYS = ("protocol", "feature_names", "image_column", "structure_page", "image_size")
MAX_SETTINGS_BYTES = 64 << 20
"""Of ``model.json``: room for a million calibration errors and cell fingerprints."""
MAX_HEADER_BYTES = 1 << 20
"""Of the safetensors header (names, shapes and offsets of the tensors)."""
MAX_MODEL_BYTES = 2 << 30
"""No safe-format file or member is read beyond this, whatever it declares."""
ZIP_MAGIC = b"PK\x03\x04"


class ModelVersionWarning(UserWarning):
    """A model file was written by another version of sarcnet-sklearn."""


def model_metadata(pipeline, **extra) -> dict:
    """What is known about a fitted pipeline: versions, protocol, inputs, creation time, and
    its model card (``metadata["card"]``, see :func:`~sarcnet_sklearn.deploy._card.model_card`).

    Parameters
    ----------
    pipeline : fitted SarcNet pipeline
    **extra
        Added as they are (e.g. ``training={...}``, ``metrics={...}``); must be
        JSON-serialisable. The entries above (versions, creation time, inputs)
        always describe ``pipeline`` and this environment, so they are not
        taken from ``extra``.

    Returns
    -------
    metadata : dict

    Examples
    --------
    >>> # model: a fitted SarcNet pipeline, e.g. load_model("sarcnet.zip")
    >>> model_metadata(model, training={"n_cells": 3686})["protocol"]
    1
    """
    metadata = dict(extra)
    metadata |= {
        "versions": _versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        inputs = SarcNetPipeline.of(pipeline).inputs
    except ValueError:  # not a fitted SarcNet model (NotSarcNetError, NotFittedError)
        metadata |= dict.fromkeys(INPUT_KEYS)
        return _json_ready(metadata, "metadata")
    metadata |= {
        "protocol": inputs.protocol,
        "feature_names": inputs.features,
        "image_column": inputs.image_column,
        "structure_page": inputs.structure_page,
        "image_size": inputs.image_size,
    }
    from ._card import CARD_KEY, model_card

    metadata[CARD_KEY] = model_card(pipeline, _json_ready(metadata, "metadata"))
    return _json_ready(metadata, "metadata")


def save_model(
    pipeline, path: str | PathLike, *, metadata: dict | None = None, format: str = "joblib"
) -> Path:
    """Save a fitted SarcNet pipeline with its metadata.

    Parameters
    ----------
    pipeline : fitted SarcNet pipeline
        Not modified (a joblib file holds a copy trimmed for prediction).
    path : str or path-like
        ``"joblib"``: a file (e.g. ``model.joblib``; not ``.zip``). ``"safe"``:
        a folder, or a file ending in ``.zip``.
    metadata : dict, optional
        Extra entries for :func:`model_metadata` (training summary, metrics, ...);
        a dict from :func:`load_model` can be passed back as it is.
    format : {"joblib", "safe"}, default="joblib"
        ``"safe"`` can be loaded without unpickling; see the module docstring.

    Returns
    -------
    path : Path
        Written atomically: a crash never leaves a half-written model.

    Examples
    --------
    >>> from sarcnet_sklearn.deploy import save_model
    >>> # model: a fitted SarcNet pipeline, e.g. load_model("sarcnet.zip")
    >>> save_model(model, "sarcnet.zip", format="safe")
    PosixPath('sarcnet.zip')
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    path = Path(path)
    info = model_metadata(pipeline, **(metadata or {}))
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "metadata": info}
    if format == "joblib":
        if path.is_dir() or path.suffix.lower() == ".zip":
            raise ValueError(f"{path}: a joblib model needs a file name not ending in .zip "
                             "(a .zip or a folder is the safe format), e.g. model.joblib")
        trimmed = _trimmed_for_prediction(pipeline)
        write_atomically(path, lambda target: joblib.dump({**header, "pipeline": trimmed},
                                                           target))
        return path
    pipeline = _storable(pipeline)
    settings = json.dumps({**header, "pipeline": _safe_settings(pipeline)}, indent=1)
    from safetensors.torch import save as save_tensors

    state = {name: value.detach().cpu().contiguous()
             for name, value in pipeline.regressor.module_.state_dict().items()}
    files = {SETTINGS_FILE: settings.encode(), WEIGHTS_FILE: save_tensors(state)}
    if path.suffix.lower() == ".zip":
        write_atomically(path, lambda target: _write_zip(target, files))
    else:
        _write_folder(path, files)
    return path


def is_model_file(path: str | PathLike) -> bool:
    """Whether ``path`` is a model file this package wrote (checked without unpickling).

    A safe-format folder or zip holding ``model.json``, or a joblib file whose
    first bytes carry this package's format name. ``train --out`` and ``tune
    --out`` replace such a file, and nothing else unless told to.
    """
    path = Path(path)
    try:
        if path.is_dir():
            return (path / SETTINGS_FILE).is_file()
        if not path.is_file():
            return False
        with open(path, "rb") as handle:
            head = handle.read(1 << 16)
        if head.startswith(ZIP_MAGIC):
            with zipfile.ZipFile(path) as archive:
                return SETTINGS_FILE in archive.namelist()
        return FORMAT.encode() in head
    except (OSError, zipfile.BadZipFile):
        return False


def check_model_output(path: str | PathLike, *, overwrite: bool = False) -> Path:
    """Refuse, before any work, to replace a file or folder that is not a model of this package.

    Raises
    ------
    ValueError
        When ``path`` exists and is not a model file (see :func:`is_model_file`)
        and ``overwrite`` is false; the message names it and says how to go on.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> victim = pathlib.Path(tempfile.mkdtemp()) / "thesis.csv"
    >>> _ = victim.write_text("a,b")
    >>> check_model_output(victim)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: refusing to replace .../thesis.csv: it exists and is not a sarcnet-sklearn model ...
    """
    path = Path(path)
    if path.is_dir() and not is_model_file(path):
        raise ValueError(f"refusing to replace the folder {path}: it is not a saved model "
                         "folder; choose another --out")
    if (path.exists() or path.is_symlink()) and not overwrite and not is_model_file(path):
        raise ValueError(
            f"refusing to replace {path}: it exists and is not a sarcnet-sklearn model file; "
            "choose another --out, or pass --overwrite to replace it"
        )
    return path


def load_model(
    path: str | PathLike,
    *,
    device: str | None = None,
    return_metadata: bool = False,
    format: str | None = None,
):
    """Load a model written by :func:`save_model` (either format) or a plain joblib pipeline.

    Parameters
    ----------
    path : str or path-like
        A joblib file, or a safe-format folder or ``.zip``.
    device : {"cpu", "cuda"}, optional
        Where to run the network. Default: the device it was saved with when
        available, else the CPU (a model trained on a GPU runs on a CPU-only
        machine).
    return_metadata : bool, default=False
        Also return the metadata dict.
    format : {"safe", "joblib"}, optional
        Insist on one format: ``"safe"`` never unpickles whatever the file is.
        Default: the safe format for a folder or a zip archive, joblib for
        anything else (see the module docstring).

    Returns
    -------
    pipeline : fitted SarcNet pipeline
    metadata : dict
        Only with ``return_metadata=True``; ``{}`` for a plain joblib file.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When the file is not a regular file or folder, is truncated, corrupt,
        inconsistent or not a model, or was written by a newer model-file
        format than this version reads.

    Warns
    -----
    ModelVersionWarning
        When the model was saved by another version of sarcnet-sklearn.

    Examples
    --------
    >>> from sarcnet_sklearn.deploy import load_model, save_model
    >>> path = save_model(model, "sarcnet.zip", format="safe")  # model: a fitted pipeline
    >>> model, info = load_model("sarcnet.zip", return_metadata=True)
    >>> info["protocol"], info["structure_page"]
    (1, 1)
    """
    if format not in (None, *FORMATS):
        raise ValueError(f"format must be None or one of {FORMATS}, got {format!r}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such model file: {path}")
    if device is not None and device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available here")
    if path.is_dir():
        kind = "safe"
    else:
        _check_regular(path)
        with open(path, "rb") as handle:
            kind = "safe" if handle.read(4) == ZIP_MAGIC else "joblib"
    if format == "safe" and kind != "safe":
        raise ValueError(f"{path} is not a safe-format model (a folder or a .zip archive)")
    if kind == "safe":
        if format == "joblib":
            raise ValueError(f"{path} is a safe-format model, not a joblib file")
        pipeline, metadata = _load_safe(path, device)
    else:
        if path.suffix.lower() == ".zip" or zipfile.is_zipfile(path):
            raise ValueError(
                f"{path} is named or built like a zip archive but does not start as one (data "
                "was put in front of it): refusing to read it, since a safe-format model is a "
                "plain zip and anything else would be unpickled"
            )
        pipeline, metadata = _load_joblib(path)
        _place_on(pipeline[-1] if hasattr(pipeline, "steps") else pipeline, device)  # any model
    with contextlib.suppress(AttributeError, TypeError):  # the pixel size it was trained at
        pipeline.pixel_size_um_ = model_pixel_size(metadata)
    with contextlib.suppress(AttributeError, TypeError):  # what it is, for reports and runs
        from ._card import CARD_KEY, model_card

        stored = metadata.get(CARD_KEY)
        pipeline.model_card_ = stored if isinstance(stored, dict) else model_card(pipeline,
                                                                                  metadata)
    return (pipeline, metadata) if return_metadata else pipeline


def _check_regular(path: Path) -> None:
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):
        raise ValueError(f"{path} is not a regular file (a pipe, device or socket)")


# -- joblib -------------------------------------------------------------------------------------


def _trimmed_for_prediction(pipeline):
    """A copy of ``pipeline`` whose skorch net keeps only what prediction needs."""
    net = pipeline[-1] if hasattr(pipeline, "steps") else pipeline
    if not isinstance(net, NeuralNet) or not getattr(net, "initialized_", False):
        return pipeline
    trimmed = copy.deepcopy(pipeline)
    (trimmed[-1] if hasattr(trimmed, "steps") else trimmed).trim_for_prediction()
    return trimmed


def _load_joblib(path: Path):
    try:
        with warnings.catch_warnings():
            # the model is moved to an available device below
            warnings.simplefilter("ignore", DeviceWarning)
            content = joblib.load(path)
    except Exception as exc:  # unpickling raises anything from EOFError to KeyError
        raise ValueError(
            f"cannot read model file {path}: it is truncated or corrupt, not a model file, or "
            f"written by versions of sarcnet-sklearn/scikit-learn/torch that this environment "
            f"({_version_line()}) cannot read ({type(exc).__name__}: {exc})"
        ) from exc
    if isinstance(content, dict) and content.get("format") == FORMAT:
        metadata = _check_header(content, path)
        return content["pipeline"], metadata
    if hasattr(content, "predict") and hasattr(content, "get_params"):
        return content, {}
    raise ValueError(
        f"{path} holds a {type(content).__name__}, not a sarcnet-sklearn model"
    )


def _place_on(net, device: str | None) -> None:
    """Run ``net`` on ``device``; by default keep its device unless CUDA is absent here."""
    if not hasattr(net, "module_"):
        return
    if device is None:
        device = str(net.device or "cpu")
        if device.startswith("cuda") and not torch.cuda.is_available():
            device = "cpu"
    net.set_params(device=device)
    for name in ("module_", "criterion_"):
        if isinstance(getattr(net, name, None), torch.nn.Module):
            getattr(net, name).to(device)


# -- safe format ------------------------------------------------------------------------------


def _storable(pipeline) -> SarcNetPipeline:
    """``pipeline`` as a SarcNet pipeline the safe format can store, or a ValueError saying why."""
    refusal = ("format='safe' stores pipelines made by make_sarcnet_pipeline (with the default "
               "SarcNetModule) only; save this model with format='joblib'")
    try:
        pipeline = SarcNetPipeline.of(pipeline)
    except TypeError as exc:
        raise ValueError(refusal) from exc
    all_params = pipeline.regressor.get_params(deep=False)
    unstorable = sorted(key for key in all_params if key.startswith(STORED_ONLY_IF_SET)
                        and key not in REGRESSOR_SETTINGS)
    if unstorable:
        raise ValueError(f"format='safe' cannot store the setting(s) {unstorable}; save this "
                         "model with format='joblib'")
    return pipeline


def _safe_settings(pipeline: SarcNetPipeline) -> dict:
    """What ``model.json`` stores of the pipeline: its settings, checked as a loader will."""
    try:
        settings = pipeline_settings(pipeline, regressor_params=REGRESSOR_SETTINGS)
        return check_settings(_json_ready(settings, "settings"))
    except ValueError as exc:
        raise ValueError(f"format='safe' cannot store this model: {exc}") from exc


def _load_safe(path: Path, device: str | None):
    try:
        with _SafeReader(path) as reader:
            content = _parse_settings(reader.read(SETTINGS_FILE, MAX_SETTINGS_BYTES))
            if not isinstance(content, dict) or content.get("format") != FORMAT:
                raise ValueError(f"{SETTINGS_FILE} is not a sarcnet-sklearn model description")
            metadata = _check_header(content, path)
            settings = check_settings(content.get("pipeline"))
            pipeline = pipeline_from_settings(settings, device=device)
            module = pipeline.regressor.module_
            expected = {name: tuple(value.shape) for name, value in module.state_dict().items()}
            n_bytes = sum(value.numel() * value.element_size()
                          for value in module.state_dict().values())
            if content["format_version"] < 2:
                raise ValueError(
                    f"{path} is in model-file format {content['format_version']} (weights "
                    f"in {OLD_WEIGHTS_FILE}, written with torch.save); this version reads "
                    "safetensors weights only: load it where it was made and save it again "
                    "with save_model(..., format='safe'), or retrain"
                )
            data = reader.read(WEIGHTS_FILE, 8 + MAX_HEADER_BYTES + n_bytes)
            module.load_state_dict(_parse_safetensors(data, expected))
    except (OSError, KeyError, zipfile.BadZipFile, UnicodeDecodeError, ValueError, TypeError,
            RuntimeError, EOFError, pickle.UnpicklingError, SafetensorError) as exc:
        if isinstance(exc, ValueError) and str(exc).startswith(str(path)):
            raise
        raise ValueError(
            f"cannot read model {path} (the safe format of save_model(..., format='safe')): "
            f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        ) from exc
    return pipeline, metadata


class _SafeReader:
    """Reads named members of a safe-format folder or zip, refusing anything unbounded."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.archive = None

    def __enter__(self) -> _SafeReader:
        if not self.path.is_dir():
            if self.path.stat().st_size > 2 * MAX_MODEL_BYTES:
                raise ValueError(f"{self.path} is larger than any model file")
            self.archive = zipfile.ZipFile(self.path)
            counts = Counter(self.archive.namelist())
            repeated = sorted(name for name, count in counts.items() if count > 1)
            if repeated:
                self.archive.close()
                raise ValueError(f"{self.path} holds {repeated} more than once; a model file "
                                 "made by save_model holds each member once")
        return self

    def __exit__(self, *exc_info) -> None:
        if self.archive is not None:
            self.archive.close()

    def read(self, name: str, limit: int) -> bytes:
        """The bytes of member ``name``; an error when it may be longer than ``limit``."""
        limit = min(limit, MAX_MODEL_BYTES)
        if self.archive is not None:
            info = self.archive.getinfo(name)
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise ValueError(f"{name} uses an unsupported zip compression")
            if info.file_size > limit:
                raise ValueError(f"{name} declares {info.file_size} bytes, more than the "
                                 f"{limit} this model can need")
            with self.archive.open(info) as member:
                data = member.read(limit + 1)
        else:
            data = self._read_file(self.path / name, limit)
        if len(data) > limit:
            raise ValueError(f"{name} holds more than the {limit} bytes this model can need")
        return data

    def _read_file(self, member: Path, limit: int) -> bytes:
        folder = os.path.realpath(self.path)
        target = os.path.realpath(member)
        if os.path.commonpath([folder, target]) != folder:
            raise ValueError(f"{member.name} is a link leading out of the model folder")
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
        descriptor = os.open(target, flags)
        with os.fdopen(descriptor, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise ValueError(f"{member.name} is not a regular file")
            if info.st_size > limit:
                raise ValueError(f"{member.name} has {info.st_size} bytes, more than the "
                                 f"{limit} this model can need")
            return handle.read(limit + 1)


def _parse_settings(data: bytes):
    try:
        return json.loads(data.decode("utf-8"))
    except RecursionError as exc:
        raise ValueError(f"{SETTINGS_FILE} is nested too deeply") from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{SETTINGS_FILE} is not valid JSON ({exc})") from exc


SAFETENSORS_DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64,
                      "F16": torch.float16, "BF16": torch.bfloat16}


def _parse_safetensors(data: bytes, expected: dict[str, tuple]) -> dict:
    """Check the tensors' names and shapes against the module before decoding them."""
    from safetensors.torch import load as load_tensors

    if len(data) < 8:
        raise ValueError(f"{WEIGHTS_FILE} is truncated")
    (n_header,) = struct.unpack("<Q", data[:8])
    if n_header > min(MAX_HEADER_BYTES, len(data) - 8):
        raise ValueError(f"{WEIGHTS_FILE} has a corrupt header")
    header = _parse_settings(data[8:8 + n_header])
    if not isinstance(header, dict):
        raise ValueError(f"{WEIGHTS_FILE} has a corrupt header")
    header.pop("__metadata__", None)
    found = {}
    for name, entry in header.items():
        if not (isinstance(entry, dict) and isinstance(entry.get("shape"), list)
                and entry.get("dtype") in SAFETENSORS_DTYPES):
            raise ValueError(f"{WEIGHTS_FILE}: tensor {name!r} has a corrupt description")
        found[name] = tuple(entry["shape"])
    if found != expected:
        missing = sorted(set(expected) - set(found))[:3]
        extra = sorted(set(found) - set(expected))[:3]
        wrong = sorted(name for name in set(found) & set(expected)
                       if found[name] != expected[name])[:3]
        raise ValueError(
            f"the weights do not fit the network the settings describe (missing {missing}, "
            f"unexpected {extra}, other shapes {[(n, found[n], expected[n]) for n in wrong]})"
        )
    return load_tensors(data)


# -- shared -----------------------------------------------------------------------------------


def _check_header(content: dict, path: Path) -> dict:
    metadata = content.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise ValueError(f"{path}: its metadata is not a JSON object")
    for old, new in RENAMED_SETTINGS.items():
        if old in metadata and new not in metadata:
            metadata[new] = metadata.pop(old)
    versions = metadata.get("versions")
    saved = versions.get("sarcnet_sklearn") if isinstance(versions, dict) else None
    saved = saved if isinstance(saved, str) and _PLAIN_VERSION.fullmatch(saved) else (
        "unknown" if not isinstance(saved, str) else ascii(saved[:40]))
    version = content.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"{path}: format_version {version!r} is not a model-file format")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{path} was written by sarcnet-sklearn {saved} in model-file format {version!r}; "
            f"this is sarcnet-sklearn {__version__}, which reads format {FORMAT_VERSION} and "
            "older: upgrade sarcnet-sklearn to load it"
        )
    if saved != __version__:
        warnings.warn(
            f"{path} was saved with sarcnet-sklearn {saved}; this is {__version__}. "
            "Its predictions may differ from those made where it was trained; check them "
            "on a few known cells, or re-train",
            ModelVersionWarning,
            stacklevel=3,
        )
    return metadata


_PLAIN_VERSION = re.compile(r"[0-9A-Za-z.+!_-]{1,40}")
"""What a version string may hold to be printed as it is (no terminal escape codes)."""


def _versions() -> dict[str, str]:
    import skorch

    return {
        "sarcnet_sklearn": __version__,
        "torch": torch.__version__,
        "sklearn": sklearn.__version__,
        "skorch": skorch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _version_line() -> str:
    return ", ".join(f"{name} {value}" for name, value in _versions().items())


def _json_ready(value, what: str):
    def plain(item):
        if isinstance(item, np.generic):
            return item.item()
        if isinstance(item, np.ndarray):
            return item.tolist()
        if isinstance(item, PathLike):
            return os.fspath(item)
        raise TypeError(f"{type(item).__name__} is not JSON-serialisable")

    try:
        return json.loads(json.dumps(value, default=plain, allow_nan=True))
    except TypeError as exc:
        raise ValueError(f"{what} must hold plain values (numbers, strings, lists, dicts): "
                         f"{exc}") from exc


def _write_zip(target: str, files: dict[str, bytes]) -> None:
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)


def _write_folder(path: Path, files: dict[str, bytes]) -> None:
    if path.exists() and not is_model_file(path):
        raise ValueError(
            f"{path} exists and is not a saved model folder; choose another name "
            "(or end it in .zip for a single file)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        for name, data in files.items():
            (temporary / name).write_bytes(data)
        if path.exists():
            shutil.rmtree(path)
        os.replace(temporary, path)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
