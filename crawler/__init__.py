"""citearchive: render cited web sources on a schedule and keep every snapshot."""
