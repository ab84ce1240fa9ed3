"""Monitoring: the I/O log format and window, drift statistics and decisions, reports, anomalies, alerts."""
