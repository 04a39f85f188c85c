"""The virtual lab: sample, cryostat and magnet physics; instrument emulators on loopback TCP."""
