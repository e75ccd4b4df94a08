"""The operations board: a small web process that gathers the services' figures for people to watch."""
