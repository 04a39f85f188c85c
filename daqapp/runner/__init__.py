"""Run control: record stream, stop/pause/abort, suspend rules, safe state."""
