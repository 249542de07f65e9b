"""Applications over the library's public API: the command line (``apps.cli``); later the studio and export."""
