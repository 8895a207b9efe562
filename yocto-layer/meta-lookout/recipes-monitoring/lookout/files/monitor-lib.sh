# monitor-lib.sh: Mender Monitor's `monitor_send_alert` for scripts that source
# /usr/share/mender-monitor/lib/monitor-lib.sh, provided by lookout (POSIX sh; bash and dash).
#
#   monitor_send_alert LEVEL NAME DESCRIPTION SUBJECT_NAME STATUS TYPE \
#                      [LOG_PATTERN LOG_FILE LINES_BEFORE LINE_MATCHING LINES_AFTER]
#
# e.g. the OK that cleans an alert nothing else clears:
#   monitor_send_alert OK "Log file contains USB disconnect" "cleared by hand" log_usb LOGCONTAINS log
#
# The alert goes through `lookout send-alert`: spooled by the running daemon at once, or kept
# in its inbox until the daemon starts. LOOKOUT_BIN names the binary (default: lookout on
# PATH); LOOKOUT_ROOT, a root prefix, is read by the binary itself. Returns its exit status.

monitor_send_alert() {
    "${LOOKOUT_BIN:-lookout}" send-alert "$@"
}
