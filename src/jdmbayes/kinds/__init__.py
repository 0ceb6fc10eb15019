"""Model kinds, each registered once with all it provides, and the one-model workflow that
calls the registry (index, build, sample, outputs). Imports results and below."""
