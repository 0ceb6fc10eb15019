"""Quantities computed from draws (posterior or prior): predictive times and values, population-
averaged estimands, contrasts, observed curves, simulated designs. Imports models and data."""
