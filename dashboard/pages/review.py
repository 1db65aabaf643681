"""/review — served by `panel serve`; the page itself is built in dashboard.app."""

from dashboard.app import page

page("review").servable()
