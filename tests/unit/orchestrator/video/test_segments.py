"""A video's segments (``orchestrator/video/segments.py``): planned with an overlap, joined with a
crossfade."""

from __future__ import annotations

import numpy as np
import pytest
from stylegrid.orchestrator.video.segments import crossfade_weights, join_segments, plan_segments


def test_segments_overlap_and_join_with_a_crossfade():
    segments = plan_segments(10, 4, 2)
    assert [(s.warm, s.first, s.end) for s in segments] == [(0, 0, 4), (2, 4, 8), (6, 8, 10)]
    assert list(crossfade_weights(2)) == pytest.approx([1 / 3, 2 / 3])
    # each segment paints its frames one grey: 0, 90, 180
    outputs = [np.full((s.end - s.warm, 2, 2, 3), 90 * s.index, np.uint8) for s in segments]
    frames = join_segments(segments, outputs)
    assert [int(f[0, 0, 0]) for f in frames] == [0, 0, 30, 60, 90, 90, 120, 150, 180, 180]
    with pytest.raises(ValueError, match="segment 1: 3 frames, expected 6"):
        join_segments(segments, [outputs[0], outputs[1][:3], outputs[2]])
