"""The ``laari`` command, assembled from the packages' own commands (the one place that may import them all)."""
