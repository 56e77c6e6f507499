"""The simulator: a driver of the same engine over scenario files."""
