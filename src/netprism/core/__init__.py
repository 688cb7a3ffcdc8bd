"""The lenses and shared math.  torch only; no I/O, no printing."""
