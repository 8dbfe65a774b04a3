"""AdaIN (Huang & Belongie, ICCV 2017): the encoder-decoder, one pass (``algorithm``), in tiles
(``tiles``) and per region (``regions``)."""
