"""Neural building blocks, one concept per module (import from the module itself):

- :mod:`latentode.nn.solve`: the only torchdiffeq caller (``SolverConfig``, ``solve``,
  ``advance``, function-evaluation counting, solver errors);
- :mod:`latentode.nn.dopri5`: adaptive Dormand-Prince 5(4) in a loop of our own (the default);
- :mod:`latentode.nn.vector_fields`: MLP vector fields ``f(t, z)``;
- :mod:`latentode.nn.encoders`: ODE-RNN and RNN encoders on each series' own clock;
- :mod:`latentode.nn.fused_odernn`: the ODE-RNN pass as one autograd node (training);
- :mod:`latentode.nn.readout`: one solve over a batch, read out at each series' times;
- :mod:`latentode.nn.intensity`: the Poisson-process intensity head;
- :mod:`latentode.nn.likelihoods`: masked likelihoods, KL and the IWAE bound;
- :mod:`latentode.nn.residual_process`: the residual process (parameters, kernels,
  likelihood); :mod:`latentode.nn.residual_kriging`: its kriging at prediction, with
  the outlying series' mixture; :mod:`latentode.nn.residual_mle`: its fit.

Shapes use B batch, T times, C channels, L latent, H hidden, S samples.
"""
