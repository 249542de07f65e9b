"""Files in and out, one module each: ``atomic`` (temp file, then rename), ``images`` (tensors ↔ PIL, grids),
``png`` (PNGs that carry their recipe), ``animation`` (GIF/MP4), ``outputs`` (free names, picture sets with their
recipes, contact sheets, morph files) and ``model_folder`` (the one reader/writer of model folders).

The package itself imports nothing, so reading a PNG's recipe (``noisebrush info``) never loads torch.
"""
