"""IVR: flows callers move through before they reach an agent."""
