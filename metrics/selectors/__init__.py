"""Reads for pages and the API: `revenue` (retention, LTV, cohorts, churn, drill-downs) and `health`."""
