"""laari: routes Finnish project descriptions into homogeneous pools (laarit) with thematic tags, and explains why.

The library: taxonomy, Finnish text analysis, embedders, the model, explanations, persistence. A prediction is
made in one place, ``classifier.predictor.Predictor``.
"""

__version__ = "0.1.0"
