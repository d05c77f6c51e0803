"""Composition root of the Smart Zone platform: settings and the ``smartzone`` command."""
