"""The algorithms that stylize by optimising the image's pixels: the shared multi-scale loop
(``loop``, in tiles for large images: ``tiles``; L-BFGS: ``lbfgs``) and the objectives plugged into
it: Gatys (``gatys``), Risser's histogram loss (``histogram``), Li & Wand's MRF (``mrf``), AdaIN's
statistics (``adain_optimize``) and Chen & Schmidt's style swap (``style_swap_optimize``).

May import: ``algorithms.base``, ``algorithms.names``, ``algorithms.shared`` and its own modules;
never ``feedforward`` or ``video``.
"""
