"""Integrations with other systems: ``promptclf.integrations.ray`` (batch prediction on Ray Data)."""
