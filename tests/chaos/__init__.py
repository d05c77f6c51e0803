"""Chaos experiments: scripted faults against real Mosquitto, PostgreSQL, anvil and aggregator processes."""
