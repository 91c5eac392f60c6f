"""Hosting customers: monthly statements at contract prices, and each customer's own view
(a database and read-only login of their own, a Grafana organisation)."""
