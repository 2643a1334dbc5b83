"""pbkit: parameter-block (PB) store, assembly, model zoos and the PB library format.

The core (store, ingest, assembly, library format) imports neither `delivery` nor `learning`;
only the command line (`pbkit.cli`) mounts their sub-commands.
"""

__version__ = "0.1.0"
