"""svgan.bench: benchmark drivers (`svgan-bench`): training speed (`train`), streaming speed (`stream`), and
`report`, which renders their JSON into `docs/benchmarks.md`. Speed targets live here, never in timed tests.
It may import every package below it.
"""
