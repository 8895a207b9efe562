# lookout's demo check, under the name of one in Mender's mender-monitor-demo package (whose
# contents are not public: UNCONFIRMED). Available, not enabled:
#   mender-monitorctl enable log usb_disconnect
# A USB device unplugged, as the kernel logs it ("usb 1-1.2: USB disconnect, device number 5"),
# read from the journal (Mender's demo moved from /var/log/kern.log to the journal in 1.4.2).
# `--dmesg` (short: -k) is journalctl's name for the kernel's messages of this boot; there is no
# `--kernel` (journalctl 252 refuses it, and the check's command would only ever exit).
SERVICE_NAME="log_usb_disconnect"
LOG_PATTERN="usb [0-9.-]+: USB disconnect"
LOG_FILE="@journalctl --dmesg --follow --lines=0 --output=short"
LOG_PATTERN_EXPIRATION=300
