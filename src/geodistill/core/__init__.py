"""Ground floor: one-sentence errors, atomic writes, logging, the progress view, quality metrics."""
