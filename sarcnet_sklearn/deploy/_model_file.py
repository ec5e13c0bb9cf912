"""Model files: a fitted SarcNet pipeline plus what is known about it, in two formats.

- ``"joblib"``: one joblib file holding ``{"format", "format_version",
  "metadata", "pipeline"}``; any pipeline, but loading it unpickles, which can
  run arbitrary code: load only files you trust.
- ``"safe"``: a folder (or a ``.zip``) with ``model.json`` (settings, feature
  names, scaler statistics, metadata) and ``weights.pt`` (the network's
  tensors, read with ``torch.load(weights_only=True)``); nothing is
  unpickled. Only pipelines made by :func:`make_sarcnet_pipeline`.

:func:`load_model` reads both, and plain joblib files of a pipeline too.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import platform
import shutil
import tempfile
import warnings
import zipfile
from datetime import datetime, timezone
from os import PathLike
from pathlib import Path

import joblib
import numpy as np
import sklearn
import torch
from skorch.exceptions import DeviceWarning

from .. import __version__
from .._columns import PROTOCOLS
from ..io import write_atomically
from ._checks import ModelInputs

FORMAT = "sarcnet-sklearn-model"
FORMAT_VERSION = 1
"""Layout version of the model files this package writes; it reads this one and older."""

FORMATS = ("joblib", "safe")
WEIGHTS_FILE = "weights.pt"
SETTINGS_FILE = "model.json"
INPUT_KEYS = ("protocol", "feature_names", "image_column", "image_channel", "image_size")


class ModelVersionWarning(UserWarning):
    """A model file was written by another version of sarcnet-sklearn."""


def model_metadata(pipeline, **extra) -> dict:
    """What is known about a fitted pipeline: versions, protocol, inputs, creation time.

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
    >>> model_metadata(pipeline, training={"n_cells": 3686})["protocol"]  # doctest: +SKIP
    2
    """
    metadata = dict(extra)
    metadata |= {
        "versions": _versions(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        inputs = ModelInputs.of(pipeline)
    except ValueError:  # not a SarcNet model: a joblib file can still hold it
        metadata |= dict.fromkeys(INPUT_KEYS)
        return _json_ready(metadata, "metadata")
    metadata |= {
        "protocol": next(
            (number for number, names in PROTOCOLS.items() if list(names) == inputs.features),
            None,
        ),
        "feature_names": inputs.features,
        "image_column": inputs.image_column,
        "image_channel": inputs.image_channel,
        "image_size": inputs.image_size,
    }
    return _json_ready(metadata, "metadata")


def save_model(
    pipeline, path: str | PathLike, *, metadata: dict | None = None, format: str = "joblib"
) -> Path:
    """Save a fitted SarcNet pipeline with its metadata.

    Parameters
    ----------
    pipeline : fitted SarcNet pipeline
    path : str or path-like
        ``"joblib"``: a file (e.g. ``model.joblib``). ``"safe"``: a folder, or a
        file ending in ``.zip``.
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
    >>> save_model(pipeline, "sarcnet.zip", format="safe")  # doctest: +SKIP
    PosixPath('sarcnet.zip')
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    path = Path(path)
    info = model_metadata(pipeline, **(metadata or {}))
    header = {"format": FORMAT, "format_version": FORMAT_VERSION, "metadata": info}
    if format == "joblib":
        if path.is_dir():
            raise ValueError(f"{path} is a folder; give a file name such as model.joblib")
        write_atomically(path, lambda target: joblib.dump({**header, "pipeline": pipeline},
                                                           target))
        return path
    settings = json.dumps({**header, "pipeline": _safe_settings(pipeline)}, indent=1)
    buffer = io.BytesIO()
    net = pipeline[-1]
    torch.save({name: value.detach().cpu() for name, value in net.module_.state_dict().items()},
               buffer)
    files = {SETTINGS_FILE: settings.encode(), WEIGHTS_FILE: buffer.getvalue()}
    if path.suffix.lower() == ".zip":
        write_atomically(path, lambda target: _write_zip(target, files))
    else:
        _write_folder(path, files)
    return path


def load_model(
    path: str | PathLike, *, device: str | None = None, return_metadata: bool = False
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
        When the file is truncated, corrupt or not a model, or was written by
        a newer model-file format than this version reads.

    Warns
    -----
    ModelVersionWarning
        When the model was saved by another version of sarcnet-sklearn.

    Examples
    --------
    >>> from sarcnet_sklearn.deploy import load_model
    >>> model, info = load_model("sarcnet.zip", return_metadata=True)  # doctest: +SKIP
    >>> info["protocol"], info["versions"]["sarcnet_sklearn"]  # doctest: +SKIP
    (2, '0.1.0')
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such model file: {path}")
    if device is not None and device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available here")
    if path.is_dir() or path.suffix.lower() == ".zip" or zipfile.is_zipfile(path):
        pipeline, metadata = _load_safe(path, device)
    else:
        pipeline, metadata = _load_joblib(path)
        _place_on(pipeline[-1] if hasattr(pipeline, "steps") else pipeline, device)
    return (pipeline, metadata) if return_metadata else pipeline


# -- joblib -------------------------------------------------------------------------------------


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

_PLAIN = (type(None), bool, int, float, str)


def _safe_settings(pipeline) -> dict:
    from ..nn import SarcNetModule
    from ..pipeline import ProtocolSelector
    from ..regressor import SarcNetRegressor

    steps = getattr(pipeline, "steps", None)
    names = [name for name, _ in steps] if steps else []
    if names != ["select", "scale", "model"] or not (
        isinstance(pipeline[0], ProtocolSelector)
        and isinstance(pipeline[-1], SarcNetRegressor)
        and pipeline[-1].module is SarcNetModule
    ):
        raise ValueError(
            "format='safe' stores pipelines made by make_sarcnet_pipeline (with the default "
            "SarcNetModule) only; save this model with format='joblib'"
        )
    select, scale, net = pipeline
    if not hasattr(net, "module_"):
        raise ValueError("the pipeline is not fitted; fit it before saving")
    scaler = scale.named_transformers_["features"]
    params = {
        key: value
        for key, value in net.get_params(deep=False).items()
        if _is_plain(value) and key != "weights"
    }
    return {
        "protocol": (int(select.protocol) if isinstance(select.protocol, (int, np.integer))
                     else list(select.protocol)),
        "keeps_image": bool(select.keeps_image_),
        "regressor_params": params,
        "feature_names": list(net.feature_names_),
        "conformity_scores": _conformity_list(pipeline),
        "input_columns": [str(column) for column in net.feature_names_in_],
        "scaler": {
            "columns": [str(column) for column in scaler.feature_names_in_],
            "mean": scaler.mean_.tolist(),
            "scale": scaler.scale_.tolist(),
            "var": scaler.var_.tolist(),
            "n_samples_seen": int(scaler.n_samples_seen_),
        },
    }


def _conformity_list(pipeline) -> list[float] | None:
    from ..intervals import conformity_scores

    scores = conformity_scores(pipeline)
    return None if scores is None else [float(score) for score in scores]


def _is_plain(value) -> bool:
    if isinstance(value, (list, tuple)):
        return all(isinstance(item, _PLAIN) for item in value)
    return isinstance(value, _PLAIN)


def _load_safe(path: Path, device: str | None):
    try:
        if path.is_dir():
            settings_text = (path / SETTINGS_FILE).read_text()
            weights_bytes = (path / WEIGHTS_FILE).read_bytes()
        else:
            with zipfile.ZipFile(path) as archive:
                settings_text = archive.read(SETTINGS_FILE).decode()
                weights_bytes = archive.read(WEIGHTS_FILE)
        content = json.loads(settings_text)
    except (OSError, KeyError, zipfile.BadZipFile, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(
            f"cannot read model {path}: expected {SETTINGS_FILE} and {WEIGHTS_FILE} from "
            f"save_model(..., format='safe') ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise ValueError(f"{path}: {SETTINGS_FILE} is not a sarcnet-sklearn model description")
    metadata = _check_header(content, path)
    try:
        state = torch.load(io.BytesIO(weights_bytes), map_location="cpu", weights_only=True)
        pipeline = _rebuild(content["pipeline"], state, device)
    except (KeyError, TypeError, RuntimeError, ValueError, EOFError,
            pickle.UnpicklingError) as exc:
        raise ValueError(
            f"cannot rebuild the model in {path}: its files are corrupt or do not match "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    return pipeline, metadata


def _rebuild(settings: dict, state: dict, device: str | None):
    import pandas as pd

    from ..pipeline import make_sarcnet_pipeline, protocol_features

    saved = str(settings["regressor_params"].get("device") or "cpu")
    if device is None:
        device = saved if not saved.startswith("cuda") or torch.cuda.is_available() else "cpu"
    params = dict(settings["regressor_params"], weights=None, device=device)
    pipeline = make_sarcnet_pipeline(settings["protocol"], **params)
    select, scale, net = pipeline
    scaler_settings = settings["scaler"]
    # Fit the transformers on a two-row stand-in with the right columns, then
    # give the scaler the statistics of the real training data.
    features = protocol_features(settings["protocol"])
    stand_in = pd.DataFrame({name: [0.0, 1.0] for name in features})
    if settings["keeps_image"]:
        stand_in.insert(0, select.image_column, ["a", "b"])
    pipeline[:-1].fit(stand_in)
    scaler = scale.named_transformers_["features"]
    if [str(c) for c in scaler.feature_names_in_] != scaler_settings["columns"]:
        raise ValueError(
            f"scaler columns {scaler_settings['columns']} do not match the protocol's {features}"
        )
    scaler.mean_ = np.asarray(scaler_settings["mean"], dtype=np.float64)
    scaler.scale_ = np.asarray(scaler_settings["scale"], dtype=np.float64)
    scaler.var_ = np.asarray(scaler_settings["var"], dtype=np.float64)
    scaler.n_samples_seen_ = np.int64(scaler_settings["n_samples_seen"])
    net.feature_names_ = list(settings["feature_names"])
    net.feature_names_in_ = np.asarray(settings["input_columns"], dtype=object)
    net.n_features_in_ = len(net.feature_names_in_)
    net.initialize()
    net.module_.load_state_dict(state)
    if settings.get("conformity_scores") is not None:
        from ..intervals import CONFORMITY_ATTRIBUTE

        scores = np.asarray(settings["conformity_scores"], dtype=np.float64)
        if scores.ndim != 1 or not np.isfinite(scores).all() or (scores < 0).any():
            raise ValueError("conformity_scores must be a list of non-negative numbers")
        setattr(net, CONFORMITY_ATTRIBUTE, scores)
    return pipeline


# -- shared -----------------------------------------------------------------------------------


def _check_header(content: dict, path: Path) -> dict:
    metadata = content.get("metadata") or {}
    saved = (metadata.get("versions") or {}).get("sarcnet_sklearn", "unknown")
    version = content.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
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
    if path.exists() and not (path.is_dir() and (path / SETTINGS_FILE).is_file()):
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
