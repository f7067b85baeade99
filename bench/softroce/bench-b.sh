#!/bin/sh
# Node B of the Soft-RoCE benchmark: the same servers, sidecar and agent as the test bed.
exec /opt/guest-b.sh
