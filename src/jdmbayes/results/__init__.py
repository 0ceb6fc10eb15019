"""Everything written for people and machines: formatting (the only rounding), run folders,
summaries, report, figures, grant text. Imports inference and below, never kinds or batch."""
