"""Style swap (Chen & Schmidt 2016) inverted by a trained network: the inverse network
(``inverse``) and the algorithm (``algorithm``)."""
