"""Tests of roost.eshet, the eshet.py API on roost."""
