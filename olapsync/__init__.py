"""olapsync."""
