# lookout's demo check, under the name of one in Mender's mender-monitor-demo package (whose
# contents are not public: UNCONFIRMED). Available, not enabled:
#   mender-monitorctl enable log mender_connect
# Errors mender-connect (remote terminal, file transfer, port forwarding) logs.
SERVICE_NAME="log_mender_connect"
LOG_PATTERN="(level|severity)=(error|fatal|panic)"
LOG_FILE="@journalctl --follow --lines=0 --output=cat --unit=mender-connect"
LOG_PATTERN_EXPIRATION=300
