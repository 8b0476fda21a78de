"""``python -m director_llm``: the ``director-llm`` command."""

from director_llm.cli.app import main

main()
