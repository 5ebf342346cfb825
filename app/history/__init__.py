"""Answers about the past, computed from the state store and held in memory.

:mod:`app.history.timeline` turns coverage spans and verdict transitions into a timeline per
replica (and merged across replicas); :mod:`app.history.incidents` and :mod:`app.history.slo`
compute the incident list and the SLO figures from it; :mod:`app.history.cache` refreshes all of
that (and the drills' newest runs and the newest recovery points) in the background, so routes
only read memory.
"""
