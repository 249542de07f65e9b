"""Files in and out: atomic writes, images and grids, PNGs that carry their recipe; later GIF/MP4, meshes."""
from noisebrush.io.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from noisebrush.io.images import make_grid, save_image, to_pil, to_uint8
from noisebrush.io.png import a1111_parameters, read_recipe, save_png

__all__ = ["a1111_parameters", "atomic_path", "atomic_write_bytes", "atomic_write_text", "make_grid", "read_recipe",
           "save_image", "save_png", "to_pil", "to_uint8"]
