"""Importers for public TACE datasets: a download as it comes -> a cohort folder in the contract."""
