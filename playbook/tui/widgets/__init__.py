"""The app's widgets: each owns its rendering and takes its state as reactive attributes."""
