"""Typer CLI: one module per command group; thin: parse → call core → render."""
