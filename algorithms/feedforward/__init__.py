"""The algorithms that stylize in one pass of a trained network, one sub-package per family:
``adain`` (Huang & Belongie), ``johnson`` (fast networks for fixed paintings), ``style_swap``
(Chen & Schmidt's inverse network) and ``wct`` (Li et al.'s whitening and colouring). Each has its
``algorithm`` (parameters, ``stylize``, the registry entry) on top of its networks, and its tiled
and regional variants, which import the networks and never the ``algorithm`` module.

May import: ``algorithms.base``, ``algorithms.names``, ``algorithms.shared``, ``algorithms.weights``
and its own modules; never ``optimization`` or ``video``.
"""
