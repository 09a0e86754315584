"""The app's screens, one per file; each is an orchestrator of widgets."""
