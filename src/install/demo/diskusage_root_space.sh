# lookout's demo check, under the name of one in Mender's mender-monitor-demo package (the
# variables are Mender's: DISKUSAGE_NAME, DISKUSAGE_THRESHOLD). Available, not enabled:
#   mender-monitorctl enable diskusage root_space
# CRITICAL when / is more than 75 % full (space as df counts it, or inodes); OK once both are at
# or below 70 % (DISKUSAGE_MARGIN, default 5). Sampled every 60 s (DISKUSAGE_INTERVAL).
DISKUSAGE_NAME="/"
DISKUSAGE_THRESHOLD=75
