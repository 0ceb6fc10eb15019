"""Compile and sample, diagnose (R-hat, ESS, LOO), power-scaling sensitivity, calibration
checks and raw summaries; the fitted-model type. Imports estimands, models, data."""
