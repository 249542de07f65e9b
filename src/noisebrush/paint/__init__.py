"""Painting: the Pipeline (load a model folder, paint), its edits (vary, inpaint, outpaint, morph), guides
(palette), explain, and recipes."""
