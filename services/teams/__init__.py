"""The team aggregate: lifecycle, labels, members and team roles."""
