"""A model on disk: the safetensors layout, legacy pickles, where files come from (local or the
hub cache), PB ids and file digests, and what kind of model directory it is."""
