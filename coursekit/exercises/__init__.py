"""Student checks, one module per lecture (``coursekit.exercises.<topic>``)."""
