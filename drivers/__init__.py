"""Instrument drivers: pymeasure drivers extended where they lack a feature, and role interfaces."""
