"""Universal style transfer by whitening and colouring (Li et al., NeurIPS 2017): the transform
(``whitening``), the decoders (``decoders``), one pass (``algorithm``), in tiles (``tiles``) and
per region (``regions``)."""
