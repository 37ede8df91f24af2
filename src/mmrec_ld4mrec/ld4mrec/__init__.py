"""LD4MRec's mathematics, one module per part of the paper: the noise schedule and step
embedding (``diffusion``, Eqs. 1-5), the soft-reconstruction target (``soft_target``, Eqs.
6-8), the importance step sampler (``step_sampler``), the multimodal signals (``signals``,
Eqs. 13-16), the C-Net (``cnet``, Eqs. 17-19), the loss (``loss``, Eq. 20) and the validated
settings (``settings``). Nothing here imports MMRec, the engine or the study harness."""
