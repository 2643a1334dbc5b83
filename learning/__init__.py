"""learning: MAASN-DA, the multi-agent PB cache learner (docs/learning.md).

Entry points: `learning.env.CacheEnv` (PettingZoo ParallelEnv), `learning.trainer.Trainer`,
`learning.policy.load_policy` / `register_checkpoint`, `learning.report.run_report`, and the
`pbkit learn` commands in `learning.cli`.
"""
