"""The zoo's models, one package each (see :mod:`grukit.zoo`)."""
