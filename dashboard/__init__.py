"""The Panel dashboard: `panel serve` runs the page scripts in `dashboard/pages`.

models/    param.Parameterized models: state and logic, testable without a browser
views/     pn.viewable.Viewer classes rendering the models
pages/     thin page scripts, one per route
serve.py   the `panel serve` invocation `switchboard serve` runs
plugins.py the routes beside the pages (OAuth callback, client metadata document)
"""

__all__: list[str] = []
