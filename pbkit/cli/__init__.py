"""The `pbkit` command line: `app` builds it, one module per command group.

`store` (ingest, assemble, verify, ...), `zoo` (zoo build, library, report) and `plan` live here;
the simulator's and the learner's groups live beside their code (`delivery.cli`, `learning.cli`)
and are mounted by `app.build_app`. Only the command line reaches into `delivery` and `learning`.
"""

from pbkit.cli.app import CliContext, build_app, default_store_dir, main

__all__ = ["CliContext", "build_app", "default_store_dir", "main"]
