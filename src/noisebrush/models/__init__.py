"""Models that ship inside the package (``builtin/``), and the tool that puts one there (``ship``)."""
