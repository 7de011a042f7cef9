"""The local pod runner, by responsibility: `addresses` hands out pod IPs, `network` picks
the range routed to loopback, `env` resolves a container's environment, `probes` checks
readiness, `processes` supervises the containers' processes, `status` builds the pod
status from them, `api` holds the runner's calls to the API server and `runner` the
watch loop that ties them together. `addresses`, `env` and `status` are pure, as are
`probe_target` and `readiness_after`. `python -m maestro.localplatform.podrunner` runs it.
"""
