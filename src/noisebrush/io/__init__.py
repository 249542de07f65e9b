"""Files in and out: images (PNG grids, atomic writes); later PNG metadata, GIF/MP4, meshes."""
from noisebrush.io.atomic import atomic_path, atomic_write_bytes, atomic_write_text
from noisebrush.io.images import make_grid, save_image, to_pil, to_uint8

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "make_grid", "save_image", "to_pil", "to_uint8"]
