"""The control-plane server: a REST API over the catalog and the web dashboard."""
