"""Data quality: contracts checked on every ingest, quarantine, profiles and observability."""
