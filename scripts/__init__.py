"""Maintenance scripts.  A package so that the soak script imports the tests'
support code (`tests.support`) with the project root on sys.path and nothing
else, as fuzz/ does: run it as a module from the project root,

    python -m scripts.soak --seconds 600 --out soak-report.json
"""
