"""The system-account aggregate: lifecycle, enablement and directly assigned roles."""
