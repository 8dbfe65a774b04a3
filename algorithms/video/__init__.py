"""Video: optical flow, warping and the temporal measures (``temporal``), and stylizing a run of
frames with temporal consistency by any algorithm (``stylize``).

May import: ``algorithms.base``, ``algorithms.shared``, ``algorithms.optimization`` (the
temporal loss plugs into its loop); nothing imports ``video`` but the orchestrator.
"""
