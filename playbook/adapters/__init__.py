"""Diagnostic back ends. This package holds what needs no driver; adapters come later."""
