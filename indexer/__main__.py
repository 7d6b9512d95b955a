"""``python -m indexer``: the indexer's commands (``run`` is what ``daemon start`` executes)."""
from indexer.cli import main

if __name__ == "__main__":
    main(prog_name="python -m indexer")
