"""The Dash UI: the continuum overview page over the twin's read interface (`twin.view.TwinReader`).

Entry point: `dashboards.app.create_dash(reader, server=..., url_prefix=...)`. Figures
(`dashboards.figures`) and page pieces (`dashboards.parts`) are pure functions of view values; the
page's state is its URL (`dashboards.urlstate`). `assets/` holds the stylesheet and the vendored
plotly.js basic bundle (see assets/PROVENANCE.md).
"""
