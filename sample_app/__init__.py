"""The sample order shop: seven services, each with its own bus and store (see docs/sample-app.md
and ``python -m sample_app --help``)."""
