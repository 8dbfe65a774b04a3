"""The shipped networks' weights (each ``.pth`` with the ``.json`` record of its training)."""

from pathlib import Path

WEIGHTS_DIR = Path(__file__).resolve().parent
