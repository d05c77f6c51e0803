"""Ingest, trips, fares, epochs and on-chain settlement of the Smart Zone."""
