"""The model-file formats :mod:`sarcnet_sklearn.deploy` writes, importable without torch.

:data:`FORMATS` is also exported by ``sarcnet_sklearn.deploy._model_file``, which reads and
writes them; it lives here so that the command line offers them as choices without importing
torch, skorch or scikit-learn.
"""

FORMATS = ("joblib", "safe")
"""``"joblib"``: one pickled file (any pipeline; load only files you trust); ``"safe"``: a
folder or ``.zip`` of JSON settings and safetensors weights, read without unpickling."""
