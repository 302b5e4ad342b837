"""Code shared by the examples: data pipelines, training loop pieces and the report."""
