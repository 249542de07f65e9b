"""The web studio: a gradio app over the library's public API, served by FastAPI under uvicorn."""
