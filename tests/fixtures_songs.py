"""Placeholder by the lead; helper A replaces this file with the song fixtures."""
