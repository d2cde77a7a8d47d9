"""Longitudinal protocol models: mixed models, estimated marginal means, ANCOVA, effect sizes."""
