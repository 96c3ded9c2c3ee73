"""`python -m local`: run the local stack (what `make dev` does)."""

from .stack import main

main()
