"""Alerts for leaders and operators: SLA transitions of dossiers and their
wire form on the alerts topic."""
