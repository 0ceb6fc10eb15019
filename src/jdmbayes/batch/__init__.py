"""Many fits at once on Dask: batches of models, the prior grid, calibration runs (later
the planning simulations). Imports kinds and below."""
