"""Serving deployments: the runner that takes their due runs, and the process that runs one.

`runner` polls the service and starts one subprocess per run; `execute` is that subprocess's
entry point and `loading` finds its flow; `deployments` holds `RunnerDeployment` (what
`Flow.to_deployment` returns) and the `serve` functions.
"""
