"""SarcNet as a skorch/scikit-learn regressor over a table of cells."""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike

import numpy as np
import pandas as pd
import torch
from sklearn.exceptions import NotFittedError
from skorch import NeuralNetRegressor
from skorch.callbacks import EarlyStopping, EpochScoring
from skorch.dataset import Dataset, ValidSplit, unpack_data
from torch.utils.data import DataLoader

from ._batches import (
    N_D4,
    BatchIterator,
    CellDataset,
    canonical_d4,
    d4_transform,
    pinned,
    random_d4,
    unwrap_subset,
)
from ._chunks import aligned_chunk_size, chunk_slices, prefetched
from ._columns import IMAGE_COLUMN, SCORE_RANGE, STRUCTURE_PAGE
from ._epoch_table import EpochTable
from ._recipe import (
    BATCH_SIZE,
    DEFAULT_BACKBONE,
    IMAGE_SIZE_PX,
    LEARNING_RATE,
    MAX_EPOCHS,
)
from ._score_map import apply_score_map, fit_score_map
from ._validation import as_frame, check_finite_features, check_target
from .images import as_image_source, load_image_stack
from .metrics import spearman_score
from .nn import SarcNetModule

DEFAULT_DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
DEFAULT_TRAIN_SPLIT = ValidSplit(0.2, random_state=0)
"""Hold out a fixed random 20 % of the training cells for validation."""
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
AUGMENTATIONS = (None, "d4")
CONSISTENCY_SHARE = 4
"""With ``consistency``, one cell in this many of a training batch is seen twice."""
"""Training-image augmentations: none (the paper's recipe) or random D4 transforms."""


class SarcNetRegressor(NeuralNetRegressor):
    """SarcNet: predicts the 1-5 sarcomere organization score of a cell.

    A skorch ``NeuralNetRegressor`` whose input is a table of cells: a
    DataFrame (or a dict of column arrays) with an image-path column and the
    cell-feature columns (every other column; standardise them first, as
    :func:`~sarcnet_sklearn.make_sarcnet_pipeline` does). Images are decoded
    once per ``fit`` call into a compact uint8 cache at ``image_size`` (and a
    chunk at a time in ``predict``); the module scales and normalises them on
    the device.

    Training and prediction run fast on both CPU and GPU: the cache is copied
    to the device once per call and batches are index slices of it (shuffled
    for training), not rows collated one by one; on a GPU the module runs in
    mixed precision and channels-last with cuDNN autotuning (see
    ``precision``); pass ``compile=True`` to ``torch.compile`` the module.

    After each epoch the Spearman correlation on the validation data is
    recorded (``valid_spearman`` in ``history``) and, at the end of training,
    the weights of the epoch with the best value are restored. Validation data
    is either an explicit ``validation_data=(X_valid, y_valid)`` passed to
    :meth:`fit` (e.g. the paper's split) or carved out by ``train_split``.

    Parameters
    ----------
    module : type, default=SarcNetModule
        The torch module class; it receives ``n_features``, ``backbone``,
        ``use_images``, ``use_features``, ``weights`` and ``head_activation``.
    backbone : str, default="resnet18"
        Image branch, one of :data:`sarcnet_sklearn.nn.BACKBONES`. ResNet-18
        with features is SarcNet; DenseNet-121 and AlexNet are the paper's
        image-only baselines (use with ``use_features=False``); ConvNeXt-Tiny
        (D-SarcNet's backbone), EfficientNet-B0 and ResNet-50 are stronger
        torchvision alternatives.
    use_features : bool, default=True
        False: the image-only CNN regressor (feature columns are ignored).
    use_images : bool, default=True
        False: a feature-only MLP (the image column may be absent).
    image_column : str, default="image_path"
        Column holding each cell's image file (or the image itself, as a 2-D
        array or a stack of pages: see :func:`~sarcnet_sklearn.images.read_plane`).
    structure_page : int, default=1
        Page holding the sarcomere structure (alpha-actinin-2): the page of a
        multi-page TIFF (1 in the AICS files) or the channel of an RGB image
        (see :func:`~sarcnet_sklearn.images.read_plane`). Earlier
        versions called it ``image_channel``; their model files still load.
    image_size : int, default=224
        Side of the square the images are resized to.
    weights : None, "imagenet" or path, default=None
        Initial backbone weights; see :func:`sarcnet_sklearn.nn.build_backbone`.
    head_activation : bool, default=False
        ReLU between the head's linear layers (the public code has none).
    augment : {"d4", None}, default="d4"
        ``"d4"``: every training image is seen under a random one of the 8
        flips and quarter turns of the square (the dihedral group D4), drawn
        per image and batch on the training device. None: no augmentation
        (the paper's recipe).
    test_time_augment : bool, default=True
        True: predict each cell as the mean over its image's 8 D4 transforms,
        so that the score does not depend on how the cell lies on the slide
        (rotations by 90 degrees and flips leave it unchanged); on synthetic
        cells it also made SarcNet's scores more accurate
        (``benchmarks/RESULTS.md``). Costs 8 forward passes per cell at
        prediction (not during training's validation). False: one pass (the
        paper's recipe), 8x faster on a CPU; it can be switched on a fitted
        model with ``set_params``, as it only changes prediction.
    canonical_orientation : bool, default=False
        True: every image is put in its canonical pose among its 8 flips and
        quarter turns before the network, in training and in prediction (the
        pose is chosen from the image itself:
        :func:`~sarcnet_sklearn._batches.canonical_d4`), so that one forward
        pass gives exactly the same score to a cell and to any flip or quarter
        turn of it. ``test_time_augment`` is then not needed and is ignored,
        and ``augment="d4"`` has no effect.
    patience : int or None, default=None
        Stop when the validation Spearman has not improved for this many epochs;
        None trains all ``max_epochs`` (the best epoch is kept either way).
    random_state : int or None, default=None
        Seeds the initial weights, the order of the training batches and the
        augmentation, so that two fits on the same data give the same model
        (on the same device and library versions). They are drawn from a
        generator of the net's own: torch's global random state is left as it
        was. None: torch's global generator.
    calibrate_scores : bool, default=True
        After training, fit a strictly increasing map from the network's output
        to the true scores of the validation cells (affine, or isotonic with 500
        validation cells or more; see :mod:`sarcnet_sklearn._score_map`) and
        predict through it: the kept epoch is chosen for its Spearman, which
        ignores a bias of its scores, and the map removes it without changing
        any cell's rank. False: the network's raw output (the paper's); it can be
        switched on a fitted model with ``set_params``, as it only changes
        prediction. Without validation cells there is no map.
    score_range : tuple (low, high) or None, default=(1.0, 5.0)
        The scale of the scores: ``fit`` refuses scores outside it (a 0-100
        scale would otherwise train silently and every prediction be clipped),
        and :func:`~sarcnet_sklearn.deploy.predict_cells` clips to it. None:
        any finite score.
    precision : {"auto", "bf16", "fp16", "fp32"}, default="auto"
        Arithmetic of the forward pass (weights, optimizer and loss stay
        float32): "bf16"/"fp16" run it under ``torch.autocast`` (fp16 with
        gradient scaling); "auto" is bf16 on a GPU that supports it, else fp16
        on a GPU, and fp32 on a CPU.
    criterion, optimizer, lr, max_epochs, batch_size, train_split, device, ...
        skorch parameters, with the paper's recipe as defaults: MSE loss, Adam,
        ``lr=5e-4``, ``batch_size=40``, ``max_epochs=100``; ``train_split``
        holds out 20 % for validation unless ``validation_data`` is given;
        ``device`` is "cuda" when a GPU is present, else "cpu". Any other skorch
        argument (``callbacks``, ``compile``, ``optimizer__weight_decay``,
        ``module__feature_widths``, ...) is accepted too, except ``module__``
        twins of the parameters above. Training batches are
        shuffled (``iterator_train__shuffle=False`` turns it off); other
        ``iterator_*`` options, or a custom ``iterator_*``/``dataset``, switch to
        skorch's DataLoader path.

    Attributes
    ----------
    feature_names_ : list of str
        Feature columns the module was trained on, in order.
    n_features_in_ : int
        Number of input columns seen in ``fit`` (image column included).
    feature_min_, feature_max_ : ndarray of shape (n_features,)
        Range of each feature column in the training data (as the module saw
        it, i.e. standardised in a pipeline).
    score_map_ : dict or None
        The calibration map fitted on the validation cells (None without them).
    fit_interrupted_ : bool
        Whether the last ``fit`` was stopped by Ctrl-C (skorch then returns
        quietly with the epochs trained so far).
    random_generator_ : torch.Generator or None
        The CPU generator batches are shuffled and augmented with (None when
        ``random_state`` is None).
    module_, history_, ... : see skorch's ``NeuralNet``.

    Notes
    -----
    Training steps go through skorch's own ``train_step_single`` and
    ``_step_optimizer``, so skorch's recipes that override ``train_step``
    (gradient accumulation, for one) apply unchanged; with fp16 gradient
    scaling, gradients are unscaled before ``on_grad_computed`` callbacks
    (gradient clipping) see them.

    skorch's ``save_params``/``load_params`` round trip works on a net that
    was only initialised (``SarcNetRegressor(...).initialize()``): its
    feature layer takes its size from the loaded parameters, and it then
    reads the feature columns by position (every column but the image
    column, in order), as plain skorch nets do. To keep the column names, the
    feature scaling and the settings with the weights, save the whole model
    with :func:`~sarcnet_sklearn.deploy.save_model`.

    Examples
    --------
    >>> from sarcnet_sklearn import SarcNetRegressor
    >>> # cells: scored cells, e.g. load_aics(make_synthetic_aics("synthetic_aics"))
    >>> net = SarcNetRegressor(use_features=False, image_size=32, max_epochs=1, verbose=0)
    >>> net = net.fit(cells[["image_path"]].head(30), cells["score"].head(30))
    >>> net.predict(cells[["image_path"]].head(1)).shape
    (1,)
    """

    def __init__(
        self,
        module=SarcNetModule,
        *,
        backbone: str = DEFAULT_BACKBONE,
        use_features: bool = True,
        use_images: bool = True,
        image_column: str = IMAGE_COLUMN,
        structure_page: int = STRUCTURE_PAGE,
        image_size: int = IMAGE_SIZE_PX,
        weights: str | PathLike | None = None,
        head_activation: bool = False,
        augment: str | None = "d4",
        test_time_augment: bool = True,
        canonical_orientation: bool = False,
        consistency: float = 0.0,
        patience: int | None = None,
        random_state: int | None = None,
        calibrate_scores: bool = True,
        score_range: tuple[float, float] | None = SCORE_RANGE,
        precision: str = "auto",
        criterion=torch.nn.MSELoss,
        optimizer=torch.optim.Adam,
        lr: float = LEARNING_RATE,
        max_epochs: int = MAX_EPOCHS,
        batch_size: int = BATCH_SIZE,
        train_split=DEFAULT_TRAIN_SPLIT,
        device: str | None = DEFAULT_DEVICE,
        **kwargs,
    ) -> None:
        self.backbone = backbone
        self.use_features = use_features
        self.use_images = use_images
        self.image_column = image_column
        self.structure_page = structure_page
        self.image_size = image_size
        self.weights = weights
        self.head_activation = head_activation
        self.augment = augment
        self.test_time_augment = test_time_augment
        self.canonical_orientation = canonical_orientation
        self.consistency = consistency
        self.patience = patience
        self.random_state = random_state
        self.calibrate_scores = calibrate_scores
        self.score_range = score_range
        self.precision = precision
        super().__init__(
            module,
            criterion=criterion,
            optimizer=optimizer,
            lr=lr,
            max_epochs=max_epochs,
            batch_size=batch_size,
            train_split=train_split,
            device=device,
            **kwargs,
        )

    # -- data -------------------------------------------------------------------------------

    def __setstate__(self, state):
        # A model pickled by an earlier version holds the structure page as ``image_channel``.
        if "image_channel" in state and "structure_page" not in state:
            state["structure_page"] = state.pop("image_channel")
        state.setdefault("consistency", 0.0)
        state.setdefault("canonical_orientation", False)
        # Earlier versions had no calibration map: their models keep predicting as they did.
        state.setdefault("calibrate_scores", True)
        super().__setstate__(state)

    def _feature_columns(self, df: pd.DataFrame) -> list[str]:
        if not self.use_features:
            return []
        return [column for column in df.columns if column != self.image_column]

    def _net_input(self, X, *, fitting: bool = False) -> dict[str, np.ndarray]:
        """Turn a table of cells into the module's inputs (uint8 images, float32 features)."""
        df = as_frame(X)
        if len(df) == 0:
            raise ValueError("X has no rows")
        if fitting:
            self.feature_names_ = self._feature_columns(df)
            self.n_features_in_ = df.shape[1]
            self.feature_names_in_ = np.asarray(df.columns, dtype=object)
            if self.use_features and not self.feature_names_:
                raise ValueError(
                    f"use_features=True but X has no feature columns besides "
                    f"{self.image_column!r}; pass features or set use_features=False"
                )
        inputs = {}
        if self.use_images:
            if self.image_column not in df.columns:
                raise ValueError(
                    f"X has no image column {self.image_column!r} (columns: {list(df.columns)}); "
                    "set image_column to the column holding the image paths"
                )
            paths = df[self.image_column]
            blank = paths.isna() | (paths.astype(str).str.strip() == "")
            if blank.any():
                raise ValueError(
                    f"X: no image path in column {self.image_column!r} at row "
                    f"{df.index[np.argmax(blank.to_numpy())]!r}"
                )
            sources = [as_image_source(path) for path in paths]
            reads_files = not all(isinstance(source, np.ndarray) for source in sources)
            inputs["images"] = load_image_stack(
                sources, self.structure_page, self.image_size,
                progress=bool(self.verbose) and reads_files and len(sources) > 1,
            )
        if self.use_features:
            names = getattr(self, "feature_names_", None)
            if names is None:  # initialised without fit (load_params): by position
                names = self._feature_columns(df)
            inputs["features"] = check_finite_features(df, names).astype(np.float32)
        if fitting:
            features = inputs.get("features", np.empty((len(df), 0), dtype=np.float32))
            self.feature_min_ = features.min(axis=0).astype(np.float64)
            self.feature_max_ = features.max(axis=0).astype(np.float64)
        return inputs

    def module_inputs(self, X) -> dict[str, np.ndarray]:
        """The network's inputs for the cells of ``X``, as ``predict`` hands them to it.

        Parameters
        ----------
        X : DataFrame
            As ``predict`` takes it (after the pipeline's other steps).

        Returns
        -------
        inputs : dict
            ``"images"``: uint8 ``(n, image_size, image_size)`` (with an image
            branch); ``"features"``: float32 ``(n, n_features)`` (with a feature
            branch).

        Examples
        --------
        >>> net = model.regressor  # model: a fitted SarcNet pipeline
        >>> inputs = net.module_inputs(model.regressor_input(cells.head(2)))
        >>> sorted(inputs), inputs["images"].dtype.name
        (['features', 'images'], 'uint8')
        """
        return self._net_input(X)

    def _check_scores(self, y: np.ndarray, what: str = "y") -> np.ndarray:
        if self.score_range is None:
            return y
        low, high = self.score_range
        y_flat = y.reshape(-1)
        outside = np.flatnonzero((y_flat < low) | (y_flat > high))
        if len(outside):
            raise ValueError(
                f"{what} has {len(outside)} score(s) outside the score range [{low:g}, {high:g}] "
                f"(first: {float(y_flat[outside[0]])} at position {outside[0]}); pass "
                "score_range=(low, high) to declare the scale of your scores, or None"
            )
        return y

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # X is a table of cells: named numeric feature columns beside an image column of
        # paths (strings) or arrays; a dict of column arrays is accepted too.
        tags.input_tags.string = self.use_images
        tags.input_tags.dict = True
        tags.target_tags.required = True
        tags.non_deterministic = self.random_state is None
        return tags

    # -- skorch hooks -----------------------------------------------------------------------

    def initialize_module(self):
        params = self.get_params_for("module")
        names = getattr(self, "feature_names_", None)
        own = {
            # unknown before fit (an initialize() to load_params into): sized on loading
            "n_features": None if names is None else len(names),
            "backbone": self.backbone,
            "use_images": self.use_images,
            "use_features": self.use_features,
            "weights": self.weights,
            "head_activation": self.head_activation,
        }
        clash = sorted(set(params) & set(own))
        if clash:
            name = clash[0]
            fix = ("it is the number of feature columns of X" if name == "n_features"
                   else f"pass {name}=... to SarcNetRegressor instead")
            raise ValueError(f"module__{name} clashes with SarcNetRegressor's own {name!r}: {fix}")
        params.update(own)
        if self.random_state is None:
            self.module_ = self.initialized_instance(self.module, params)
        else:
            with torch.random.fork_rng(devices=[]):  # seed the weights, not the user's torch
                torch.manual_seed(self.random_state)
                self.module_ = self.initialized_instance(self.module, params)
        if self._device_type() == "cuda":
            torch.backends.cudnn.benchmark = True
        image_branch = getattr(self.module_, "image_branch", None)
        if image_branch is not None:  # the feature layer may still be lazy (load_params)
            image_branch.to(memory_format=torch.channels_last)
        return self

    def initialize(self):
        super().initialize()
        self.random_generator_ = (None if self.random_state is None
                                  else torch.Generator().manual_seed(self.random_state))
        uses_fp16 = self._autocast_dtype() is torch.float16
        self.grad_scaler_ = torch.amp.GradScaler(self._device_type()) if uses_fp16 else None
        return self

    def get_default_callbacks(self):
        callbacks = [(name, EpochTable() if name == "print_log" else callback)
                     for name, callback in super().get_default_callbacks()]
        if self._has_validation():
            callbacks += [
                (
                    "valid_spearman",
                    EpochScoring(
                        _spearman_scoring, name="valid_spearman", lower_is_better=False
                    ),
                ),
                (
                    "best_valid_spearman",
                    EarlyStopping(
                        monitor="valid_spearman",
                        lower_is_better=False,
                        patience=self.patience,
                        threshold=0.0,
                        threshold_mode="abs",
                        load_best=True,
                        sink=_silent,
                    ),
                ),
            ]
        return callbacks

    def _has_validation(self) -> bool:
        explicit = getattr(self, "validation_dataset_", None) is not None
        return explicit or self.train_split is not None

    def get_split_datasets(self, X, y=None, **fit_params):
        validation = getattr(self, "validation_dataset_", None)
        if validation is None:
            return super().get_split_datasets(X, y, **fit_params)
        return self.get_dataset(X, y), validation

    def get_dataset(self, X, y=None):
        plain = self.dataset is Dataset and not self.get_params_for("dataset")
        if plain and isinstance(X, Mapping):
            return CellDataset(X, y)
        return super().get_dataset(X, y)

    def get_iterator(self, dataset, training=False):
        iterator = self.iterator_train if training else self.iterator_valid
        kwargs = self.get_params_for("iterator_train" if training else "iterator_valid")
        kwargs.setdefault("batch_size", self.batch_size)
        if kwargs["batch_size"] == -1:
            kwargs["batch_size"] = len(dataset)
        if training and len(dataset) > 1 and len(dataset) % kwargs["batch_size"] == 1:
            # BatchNorm cannot train on a final batch of one cell: drop it (a different
            # cell each epoch, as batches are shuffled).
            kwargs["drop_last"] = True
        if iterator is DataLoader:
            kwargs.setdefault("shuffle", training)
            base, indices = unwrap_subset(dataset)
            generator = getattr(self, "random_generator_", None) if training else None
            if isinstance(base, CellDataset) and set(kwargs) <= {"batch_size", "shuffle",
                                                                 "drop_last"}:
                return BatchIterator(base, indices, device=self.device or "cpu",
                                     generator=generator, **kwargs)
            if generator is not None:
                kwargs.setdefault("generator", generator)
        return iterator(dataset, **kwargs)

    # -- precision --------------------------------------------------------------------------

    def _device_type(self) -> str:
        return torch.device(self.device or "cpu").type

    def _autocast_dtype(self) -> torch.dtype | None:
        if self.precision == "auto":
            if self._device_type() != "cuda":
                return None
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision must be 'auto' or one of {sorted(PRECISIONS)}, got {self.precision!r}"
            )
        return PRECISIONS[self.precision]

    def infer(self, x, **fit_params):
        """The module's output; with D4 augmentation or test-time averaging as configured."""
        images = x.get("images") if isinstance(x, Mapping) else None
        if images is None:
            return self._infer_once(x, **fit_params)
        if self.canonical_orientation:  # one pass, exactly invariant
            return self._infer_once({**x, "images": canonical_d4(images)[0]}, **fit_params)
        if self.module_.training:
            if self.augment != "d4":
                return self._infer_once(x, **fit_params)
            generator = getattr(self, "random_generator_", None)
            n_twice = -(-len(images) // CONSISTENCY_SHARE) if self.consistency else 0
            if n_twice == 0:
                return self._infer_once({**x, "images": random_d4(images, generator)},
                                        **fit_params)
            both = {key: torch.cat([value, value[:n_twice]]) for key, value in x.items()}
            both["images"] = random_d4(both["images"], generator)
            y_pred = self._infer_once(both, **fit_params)
            self._consistency_pair = (y_pred[:n_twice], y_pred[len(images):])
            return y_pred[:len(images)]
        if self.test_time_augment and not getattr(self, "_fitting", False):
            outputs = [self._infer_once({**x, "images": d4_transform(images, t)}, **fit_params)
                       for t in range(N_D4)]
            return torch.stack(outputs).mean(dim=0)
        return self._infer_once(x, **fit_params)

    def _infer_once(self, x, **fit_params):
        dtype = self._autocast_dtype()
        if dtype is None:
            return super().infer(x, **fit_params)
        with torch.autocast(self._device_type(), dtype=dtype):
            y_pred = super().infer(x, **fit_params)
        return y_pred.float()

    def get_loss(self, y_pred, y_true, X=None, training=False):
        loss = super().get_loss(y_pred, y_true, X=X, training=training)
        pair = self.__dict__.pop("_consistency_pair", None)
        if training and pair is not None:
            first, second = pair
            loss = loss + self.consistency * torch.mean((first - second) ** 2)
        return loss

    def train_step_single(self, batch, **fit_params):
        scaler = getattr(self, "grad_scaler_", None)
        if scaler is None:
            return super().train_step_single(batch, **fit_params)
        self._set_training(True)
        Xi, yi = unpack_data(batch)
        y_pred = self.infer(Xi, **fit_params)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        scaler.scale(loss).backward()
        for name in self._optimizers:  # on_grad_computed callbacks see true gradients
            scaler.unscale_(getattr(self, name + "_"))
        return {"loss": loss, "y_pred": y_pred}

    def _step_optimizer(self, step_fn):
        scaler = getattr(self, "grad_scaler_", None)
        if scaler is None:
            return super()._step_optimizer(step_fn)
        if step_fn is not None:
            step_fn()  # GradScaler takes no closure: compute the gradients first
        for name in self._optimizers:
            scaler.step(getattr(self, name + "_"))
        scaler.update()
        return None

    # -- public API -------------------------------------------------------------------------

    def fit(self, X, y, validation_data=None, **fit_params):
        """Train on a table of cells.

        Parameters
        ----------
        X : DataFrame or dict of arrays
            Image-path column plus feature columns.
        y : array-like of shape (n_cells,) or (n_cells, 1)
            Scores (e.g. the mean of the experts' 1-5 scores).
        validation_data : tuple (X_valid, y_valid), optional
            Explicit validation cells (same columns as ``X``); the epoch with the
            best Spearman on them is kept. Default: ``train_split`` holds out cells.
        **fit_params
            Passed to skorch's ``fit``.

        Returns
        -------
        self : SarcNetRegressor
        """
        fresh = not self.warm_start or not self.initialized_
        inputs, target = self._training_data(X, y, validation_data, learn_columns=fresh)
        try:
            return super().fit(inputs, target, **fit_params)
        finally:
            self.__dict__.pop("validation_dataset_", None)

    def partial_fit(self, X, y=None, classes=None, validation_data=None, **fit_params):
        """Train for ``max_epochs`` more epochs, starting from the current weights.

        A net that is not initialised yet is initialised first (learning its
        columns from ``X``, as :meth:`fit` does); later calls need the same
        feature columns.

        Parameters
        ----------
        X, y, validation_data, **fit_params
            As for :meth:`fit`.
        classes : None
            Unused; scikit-learn's ``partial_fit`` signature.

        Returns
        -------
        self : SarcNetRegressor
        """
        if not isinstance(X, _NetInputs):  # called by the user, not by fit
            X, y = self._training_data(X, y, validation_data, learn_columns=not self.initialized_)
        self.__dict__.pop("conformity_scores_", None)  # a calibration belongs to the old weights
        self.score_map_ = None
        self._fitting = True  # validation during training predicts without test-time averaging
        self.fit_interrupted_ = False
        try:
            super().partial_fit(X, y, classes, **fit_params)
        finally:
            validation = self.__dict__.pop("validation_dataset_", None)
            del self._fitting
        self.score_map_ = self._score_map(X, y, validation)
        return self

    def _score_map(self, X, y, validation):
        """The map from raw predictions to scores, fitted on the validation cells (or None)."""
        if validation is None and self.train_split is not None:
            validation = self.get_split_datasets(X, y)[1]
        if validation is None or len(validation) < 2:
            return None
        base, indices = unwrap_subset(validation)
        target = getattr(base, "y", None)  # a custom dataset may not expose its targets
        if target is None:
            return None
        observed = np.asarray(target if indices is None else target[indices]).reshape(-1)
        with torch.inference_mode():
            raw = NeuralNetRegressor.predict(self, validation).reshape(-1)
        return fit_score_map(raw, observed)

    def _training_data(self, X, y, validation_data, *, learn_columns: bool):
        """The module's inputs and targets for training; sets ``validation_dataset_``."""
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {self.augment!r}")
        if not (isinstance(self.consistency, (int, float)) and 0 <= self.consistency < np.inf):
            raise ValueError(f"consistency must be a finite number >= 0, got {self.consistency!r}")
        if self.consistency and self.canonical_orientation:
            raise ValueError("consistency and canonical_orientation exclude each other: in its "
                             "canonical pose every transform of a cell is the same image")
        if self.consistency and self.augment != "d4":
            raise ValueError("consistency needs augment='d4': it compares two random D4 "
                             "transforms of a cell")
        inputs = _NetInputs(self._net_input(X, fitting=learn_columns))
        target = self._check_scores(check_target(y, len(next(iter(inputs.values())))))
        self.validation_dataset_ = None
        if validation_data is not None:
            X_valid, y_valid = validation_data
            valid_inputs = self._net_input(X_valid)
            y_valid = check_target(y_valid, len(next(iter(valid_inputs.values()))))
            self.validation_dataset_ = self.get_dataset(
                valid_inputs, self._check_scores(y_valid, "validation y")
            )
        return inputs, target

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        try:
            return super().fit_loop(X, y, epochs=epochs, **fit_params)
        except KeyboardInterrupt:
            self.fit_interrupted_ = True  # skorch ends training quietly: remember it
            raise

    def predict(self, X) -> np.ndarray:
        """Predict one score per cell (1-D float array), in evaluation mode.

        The cells are decoded and scored a chunk of about a thousand at a time
        (whole batches, so the scores are those of a single pass), and the next
        chunk is decoded while the model works on the current one: memory does
        not grow with the number of cells, and on a GPU the decoded chunk waits
        in pinned memory so that the copy overlaps with the model.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before ``fit``.
        """
        if not getattr(self, "initialized_", False):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call 'fit' before 'predict'"
            )
        df = as_frame(X)
        if len(df) == 0:
            raise ValueError("X has no rows")
        batch_size = self.get_params_for("iterator_valid").get("batch_size", self.batch_size)
        parts = chunk_slices(len(df), aligned_chunk_size(batch_size))
        chunks = (df.iloc[part] for part in parts)
        on_gpu = self._device_type() == "cuda"

        def prepare(chunk: pd.DataFrame) -> dict:
            inputs = self._net_input(chunk)
            return pinned(inputs) if on_gpu else inputs

        scores = []
        with torch.inference_mode():
            for inputs in prefetched(prepare, chunks):
                scores.append(super().predict(inputs).reshape(-1))
        scores = np.concatenate(scores)
        if self.calibrate_scores and getattr(self, "score_map_", None) is not None:
            return apply_score_map(self.score_map_, scores).astype(scores.dtype)
        return scores


class _NetInputs(dict):
    """The module's inputs, already read from a table of cells (as ``fit`` hands them on)."""


def _spearman_scoring(net, X, y) -> float:
    return spearman_score(y, net.predict_proba(X))


def _silent(*args, **kwargs) -> None:
    return None
