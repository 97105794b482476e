"""Compute kernels, grouped by device (cpu/ now; gpu/ later)."""
