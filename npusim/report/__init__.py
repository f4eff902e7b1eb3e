"""Faces of a result: terminal tables now; JSON, CSV, xlsx, plots and traces as they come."""
