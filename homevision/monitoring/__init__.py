"""Monitoring: drift and data-quality reports of new exports against the champion's reference."""
