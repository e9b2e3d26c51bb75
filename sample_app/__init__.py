"""The sample order app: several services talking over one bus (see ``python -m sample_app``)."""
