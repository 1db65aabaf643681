"""The `switchboard` command line: a face of the services API beside `dashboard/` and `notebooks/`."""
