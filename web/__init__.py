"""Templates, static files and translations (no build step)."""
