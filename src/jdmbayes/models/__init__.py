"""The models: specs and prior sets, likelihood families, design indexing, and one builder
per model kind (PyMC). Imports data and the basics."""
