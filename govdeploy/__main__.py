"""``python -m govdeploy`` runs the CLI."""

from govdeploy.cli import main

main()
