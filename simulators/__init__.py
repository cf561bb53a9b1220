"""Load profiles and generators of procedure events and sensor readings, record
and replay."""
