"""flightrec composition root: the ``flightrec`` command and the local stack."""
