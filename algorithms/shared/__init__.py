"""The pieces every family of algorithms builds on: the VGG-19 encoder, the losses and feature
statistics, colour, patches, tiling and memory budgets, spatial regions, parameter checks, the
devices and the quality measures.

May import: ``algorithms.base`` and ``algorithms.names``, and its own modules. Never a family
(``optimization``, ``feedforward``, ``video``): the families depend on these pieces, not back.
"""
