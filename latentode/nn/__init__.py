"""Neural building blocks, one concept per module (import from the module itself):

- :mod:`latentode.nn.solve`: the only torchdiffeq caller (``SolverConfig``, ``solve``,
  ``advance``, function-evaluation counting, solver errors);
- :mod:`latentode.nn.vector_fields`: MLP vector fields ``f(t, z)``;
- :mod:`latentode.nn.encoders`: ODE-RNN and RNN encoders on each series' own clock;
- :mod:`latentode.nn.readout`: one solve over a batch, read out at each series' times;
- :mod:`latentode.nn.intensity`: the Poisson-process intensity head;
- :mod:`latentode.nn.likelihoods`: masked likelihoods, KL and the IWAE bound.

Shapes use B batch, T times, C channels, L latent, H hidden, S samples.
"""
