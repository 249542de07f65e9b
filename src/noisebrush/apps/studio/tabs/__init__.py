"""The studio's tabs: one module each (build(studio) -> dict of components); see apps/studio/app.py."""
