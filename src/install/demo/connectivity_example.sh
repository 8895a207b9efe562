# lookout's demo check, under the name of the one in Mender's mender-monitor-demo package (whose
# contents are not public: the variable names are lookout's, UNCONFIRMED). Available, not enabled:
#   mender-monitorctl enable connectivity example
# An HTTP HEAD to example.com every 60 s (any status below 500 answers), 10 s to answer; CRITICAL
# after 3 failures in a row, or at once when a link, route or address goes away and a probe then
# fails. Alert: "Unable to connect to the address 'http://example.com'".
CONNECTIVITY_ADDRESS="http://example.com"
CONNECTIVITY_INTERVAL=60
CONNECTIVITY_TIMEOUT=10
CONNECTIVITY_FAILURES=3
