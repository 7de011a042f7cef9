"""The local pod runner, by responsibility: `addresses` hands out pod IPs, `network` picks
the range routed to loopback, `env` resolves a container's environment, `probes` checks
readiness, `lifecycle` decides as the kubelet does (crash-loop back-off, grace period),
`termination` reads a container's termination message, `processes` supervises the
containers' processes, `status` builds the pod status from them, `api` holds the runner's
calls to the API server and `runner` the watch loop that ties them together. `addresses`,
`env`, `lifecycle` and `status` are pure, as are `probe_target`, `readiness_after` and
`termination_message`. `python -m maestro.localplatform.podrunner` runs it.
"""
