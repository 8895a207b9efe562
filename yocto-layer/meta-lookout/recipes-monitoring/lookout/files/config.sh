# Global settings of lookout, in Mender Monitor's config.sh form: one VAR=value line each, so
# that `sed -i 's/VAR=.*/VAR=new/' config.sh` edits work. lookout reads this file as data and
# never executes it; the daemon applies an edit at once (`systemctl restart mender-monitor`
# works too). Every value below is the built-in default: deleting a line changes nothing.
# `lookout check-config` validates the file. One source: the Yocto layer installs this file and
# `lookout install` writes the copy built into the binary.

# --- Alert delivery -----------------------------------------------------------------------------
# Where alerts go: a path joined to the server the Mender client names, or a full http:// URL.
ALERT_URL=/api/devices/v1/devicemonitor/alert
# Cap (s) of the retry backoff after a failed delivery (full jitter from 1 s, doubling); 0: no
# backoff, retry every DEFAULT_ALERT_STORE_RESEND_INTERVAL_S.
SEND_ALERT_MAX_INTERVAL_S=300
# Retry period (s) when the backoff is off; how often to ask the Mender client for a token while
# alerts wait without one.
DEFAULT_ALERT_STORE_RESEND_INTERVAL_S=60
# Most alerts waiting to be delivered (at least 1); superseded ones are dropped first.
ALERT_OFFLINE_STORE_MAX_COUNT=1000
# A superseded waiting alert older than this (s, 7 days) is dropped; an alert's last state never is.
ALERT_STORE_MAX_RECORD_AGE_S=604800
# Configuration push period (s); it is also pushed at start and on every change. 0: only then.
CONFPUSH_INTERVAL=3600
# lookout: most bytes of alerts waiting in the spool (4 MiB); superseded ones are dropped first.
ALERT_STORE_MAX_BYTES=4194304
# lookout: always = an alert is on disk (fdatasync, once per batch) before it counts as accepted,
# so a power cut loses none; never = the kernel writes it back (less flash wear).
ALERT_STORE_FSYNC=always
# lookout: the most one request to the server may take (s; connecting: 5 s).
SEND_ALERT_TIMEOUT_S=30

# --- Prometheus Alertmanager (lookout; off unless set) -------------------------------------------
# Alertmanager base URLs, separated by blanks (the peers of one cluster: each gets every alert),
# next to the Mender server; read at start (`mender-monitord --alertmanager URL` alone: only it).
#ALERTMANAGER_URL="http://alertmanager.example.org:9093"
# Labels added to every alert sent to Alertmanager; device= replaces the hostname.
#ALERT_LABELS="site=plant-4 model=pi4"
# How long (s) a firing alert lasts on Alertmanager unless renewed (every half lease while it
# fires), so a device that dies is resolved after it.
#ALERTMANAGER_LEASE_S=300

# --- Alert levels (CRITICAL or WARNING) ---------------------------------------------------------
DEFAULT_ALERT_LEVEL=CRITICAL
# Per subsystem; empty: DEFAULT_ALERT_LEVEL.
DEFAULT_LOG_ALERT_LEVEL=
DEFAULT_SERVICE_ALERT_LEVEL=
DEFAULT_DBUS_ALERT_LEVEL=

# --- Log checks ---------------------------------------------------------------------------------
# Expiry (s) of log checks without their own LOG_PATTERN_EXPIRATION: the OK is sent after this
# long without another match. 0: never (the alert clears when the check is disabled or changed).
DEFAULT_LOG_PATTERN_EXPIRATION_SECONDS=0
# Context lines sent with a match, before and after it (capped at 1000).
DEFAULT_LOG_LINES_BEFORE=30
DEFAULT_LOG_LINES_AFTER=30
# lookout: how long (ms) a CRITICAL waits for its "after" lines; sent earlier once all are there.
LOG_LINES_AFTER_WINDOW_MS=200
# lookout: most bytes of one line in an alert (longer lines are cut, and counted).
LOG_MAX_LINE_BYTES=16384
# Where the checks live (takes the --root prefix).
MONITOR_D_DIRECTORY=/etc/mender-monitor/monitor.d

# --- D-Bus checks -------------------------------------------------------------------------------
# Expiry (s) of D-Bus checks without their own DBUS_ALERT_EXPIRATION; 0: never.
DEFAULT_DBUS_ALERT_EXPIRATION_SECONDS=0

# --- Service checks -----------------------------------------------------------------------------
# A flap is a change between running and not running. FLAPPING_COUNT_THRESHOLD flaps within
# FLAPPING_INTERVAL seconds make one "Service <name> going up and down" alert (0: off; at most 64).
FLAPPING_INTERVAL=600
FLAPPING_COUNT_THRESHOLD=6
# How long (s) the flap history is kept (a shorter value shortens the window).
ALERT_LOG_MAX_AGE=3600

# --- The agent ----------------------------------------------------------------------------------
# The agent's own log (stderr: the journal): FATAL ERROR WARN INFO DEBUG TRACE.
CONFIG_LOG_LEVEL=INFO
# Accepted and ignored: lookout logs to stderr (the journal), not to a file.
DAEMON_LOG_FILE=
# lookout: how long (s) read positions may stay unsaved (flash wear vs lines read again after a
# power cut).
STATE_SAVE_INTERVAL_S=5
