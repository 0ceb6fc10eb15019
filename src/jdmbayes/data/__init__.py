"""Read a series folder, type and check every cell against the contract (data/README.md),
and the reconstructed bundled series with its published checks. Imports only the basics."""
