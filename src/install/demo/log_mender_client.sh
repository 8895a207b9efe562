# lookout's demo check, under the name of one in Mender's mender-monitor-demo package (whose
# contents are not public: UNCONFIRMED). Available, not enabled:
#   mender-monitorctl enable log mender_client
# Errors the Mender client logs: the updater and the authentication daemon (Mender 4:
# mender-updated, mender-authd; Mender 3: mender-client), "level=error" or "severity=error".
SERVICE_NAME="log_mender_client"
LOG_PATTERN="(level|severity)=(error|fatal|panic)"
LOG_FILE="@journalctl --follow --lines=0 --output=cat --unit=mender-updated --unit=mender-authd --unit=mender-client"
LOG_PATTERN_EXPIRATION=300
