"""Rule engine: rules compiled once, evaluated per event over event-time windows."""
