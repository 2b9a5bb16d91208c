"""In-memory session data and window sampling shared by every model and baseline."""
