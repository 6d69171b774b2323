"""A bill's way through the pipeline: pure rules (``policy``), the decision value they return
(``decision``) and one module per step that loads, calls, decides and applies."""
