"""Fast networks for a fixed set of paintings (Johnson et al. 2016, with Dumoulin et al.'s
conditional instance norm): the transform network (``network``), one pass (``algorithm``) and in
tiles (``tiles``)."""
