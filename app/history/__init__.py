"""History: answers about the past (incidents, SLO, maintenance), computed from the store."""
