#!/bin/sh
# The container's entrypoint: run the mounted config, or the demo only when asked.
#
#   (no arguments)   alerting run --config /etc/jc-alerting/config.yaml; refused (exit 78)
#                    when nothing is mounted there
#   demo [ARGS]      the demo config with its built-in DI simulator (or JC_ALERTING_DEMO=1)
#   ANYTHING ELSE    passed to `alerting` (e.g. `validate --config ...`, `silence list`)
set -eu
CONFIG="${JC_ALERTING_CONFIG:-/etc/jc-alerting/config.yaml}"
DEMO="${JC_ALERTING_DEMO_CONFIG:-/etc/jc-alerting/demo.yaml}"

if [ "${1:-}" = "demo" ] || { [ "$#" -eq 0 ] && [ "${JC_ALERTING_DEMO:-}" = "1" ]; }; then
    [ "${1:-}" = "demo" ] && shift
    echo "jc-alerting: demo mode: polling the built-in DI simulator, not a real organization" >&2
    exec alerting run --config "$DEMO" "$@"
fi
if [ "$#" -eq 0 ]; then
    if [ ! -f "$CONFIG" ]; then
        echo "jc-alerting: no config at $CONFIG: mount yours with" \
            "-v \"\$PWD/config.yaml:$CONFIG:ro\", or run the demo with the argument 'demo'" \
            "or -e JC_ALERTING_DEMO=1" >&2
        exit 78  # EX_CONFIG: systemd and orchestrators show it as a configuration error
    fi
    exec alerting run --config "$CONFIG"
fi
exec alerting "$@"
