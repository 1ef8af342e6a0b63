"""End-to-end examples that ship with Plinth."""
