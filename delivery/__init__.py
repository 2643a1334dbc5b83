"""delivery: the multi-cell CoMP broadcast caching simulator, its beamformers and caching policies.

Entry points: `delivery.config.ScenarioConfig`, `delivery.simulator.Simulator`,
`delivery.policies.make_policy` / `register_policy`; model and choices in docs/system-model.md.
"""
