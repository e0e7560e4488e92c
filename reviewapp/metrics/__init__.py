"""Metrics dashboard (issue #6): queries, charts and the admin views under /admin/metrics."""
