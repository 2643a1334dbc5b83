"""Blocks over HTTP: `pbkit serve` (an origin serving a store, or an edge cache in front of an
upstream) and `pbkit pull` (a device fetching only the blocks it lacks, each verified on arrival).

`protocol` (endpoints, ids, block headers), `server` (the origin app), `eviction` (LRU/LFU for the
edge; the simulator's policies live in `delivery`, which pbkit's core never imports), `edge` (the
edge cache app), `pull` (the client), `run` (serving an app with uvicorn). docs/network.md.
"""
