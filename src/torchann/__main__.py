"""``python -m torchann`` runs the command line."""

from torchann.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
