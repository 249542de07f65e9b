"""Workflows on top of training and painting: fine-tuning on your pictures, learned preference, experiments."""
