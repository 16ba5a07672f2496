#!/bin/sh
# A pretend background worker for the quickstart: "processes" a job every
# two seconds and, on SIGTERM, finishes cleanly with exit status 0.
trap 'echo "worker $RINGMASTER_WID: SIGTERM, finishing"; exit 0' TERM
job=0
echo "worker $RINGMASTER_WID: started as $RINGMASTER_PROCESS (pid $$)" >&2
while :; do
  job=$((job + 1))
  echo "worker $RINGMASTER_WID: processed job $job"
  sleep 2 &
  wait $!
done
