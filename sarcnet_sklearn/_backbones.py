"""The names of the image branches :mod:`sarcnet_sklearn.nn` builds, importable without torch.

:data:`BACKBONES` is also exported by :mod:`sarcnet_sklearn.nn`, which builds them; it lives
here so that the command line offers them as choices without importing torch.
"""

BACKBONES = (
    "resnet18", "densenet121", "alexnet", "convnext_tiny", "efficientnet_b0", "resnet50"
)
"""The torchvision CNNs :func:`~sarcnet_sklearn.nn.build_backbone` builds as image branches."""
