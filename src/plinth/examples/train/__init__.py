"""Example training scripts, runnable with ``plinth train`` under every launcher."""
