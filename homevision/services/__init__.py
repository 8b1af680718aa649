"""The team's tracking services, run by `make services` (scripts/services.sh): PostgreSQL
(Debian's `postgresql` package) with scram-sha-256 passwords, and `mlflow server` behind MLflow's
basic-auth app, its backend store on that PostgreSQL and its artifacts served from a local root.

    python -m homevision.services start|stop|status|env

Secrets are generated on first start (homevision.service_secrets: files with mode 0600 under
`<services dir>/secrets/`) and reach PostgreSQL and the MLflow server through files and their
environment, never their command lines. Both bind to 127.0.0.1 only. A pid or a port is
treated as ours only when it is (homevision.services.processes); nothing else is signalled.
"""
