"""Core utilities shared by every stage: settings, ids, clock, atomic files, URLs."""
