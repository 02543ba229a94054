"""Speech corpora: the built-in synthetic SLU corpus and loaders of real corpora, one schema."""
