"""Command-line interface: argument parsing only; every command calls library functions."""
