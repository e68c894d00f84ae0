"""Standalone reports: an endpoint's monitoring over a period, or two datasets' drift, as one
HTML file with no network access (or as JSON). ``build`` makes the data, ``html`` the page."""

from shipyard.reports.build import dataset_report, endpoint_report
from shipyard.reports.html import render_html

__all__ = ["dataset_report", "endpoint_report", "render_html"]
