#!/bin/sh
# check-case.sh REPORT CASE: the ctest verdict of one Soft-RoCE bed case (77 = skipped).
report=$1 case=$2
[ -f "$report" ] || { echo "no report at $report: the softroce.bed fixture did not run"; exit 1; }
if grep -q '^SKIP ' "$report"; then sed -n 's/^SKIP /skipped: /p' "$report"; exit 77; fi
line=$(grep "^$case " "$report" | tail -n 1)
[ -n "$line" ] || { echo "case $case did not run (see the guest logs next to $report)"; exit 1; }
echo "$line"
case "$line" in "$case pass "*) exit 0 ;; *) exit 1 ;; esac
