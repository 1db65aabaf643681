"""`pn.viewable.Viewer` classes rendering the models in `dashboard.models`."""
