"""Monitoring: drift statistics over prediction logs and reference profiles."""
