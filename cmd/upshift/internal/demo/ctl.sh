#!/bin/sh
# ctl start|stop: the start and stop hooks of the upshift demo target.
# Written by upshift dev; needs only sh, nohup, kill and sleep.
set -u

root=${UPSHIFT_ROOT:-@ROOT@}
addr=@ADDR@
bin=$root/current/bin/demo-app
pidfile=$root/run/app.pid
log=$root/logs/app.log

# Loops count tenths of a second; a sleep without fractions sleeps whole ones.
if sleep 0.01 2>/dev/null; then tick=0.1 step=1; else tick=1 step=10; fi

# running PID: the process exists, is no zombie and, where /proc tells, is
# the demo app (a stale pidfile may name a recycled pid).
running() {
	kill -0 "$1" 2>/dev/null || return 1
	[ -r "/proc/$1/stat" ] || return 0
	read -r stat <"/proc/$1/stat" || return 0
	comm=${stat#*\(}
	comm=${comm%\)*}
	rest=${stat##*\) }
	[ "${rest%% *}" != Z ] && [ "$comm" = demo-app ]
}

# gone PID TENTHS: wait at most TENTHS tenths of a second for PID to end.
gone() {
	n=0
	while running "$1"; do
		[ "$n" -ge "$2" ] && return 1
		sleep "$tick"
		n=$((n + step))
	done
	return 0
}

stop() {
	if [ ! -f "$pidfile" ]; then
		echo "demo-app is not running"
		return 0
	fi
	pid=
	read -r pid <"$pidfile" || true
	case $pid in
	'' | *[!0-9]*)
		echo "ignoring a bad pidfile: $pidfile"
		rm -f "$pidfile"
		return 0
		;;
	esac
	if ! running "$pid"; then
		echo "demo-app is not running (stale pid $pid)"
		rm -f "$pidfile"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null
	if ! gone "$pid" 50; then
		echo "demo-app (pid $pid) ignored TERM for 5s; killing it"
		kill -KILL "$pid" 2>/dev/null
		if ! gone "$pid" 20; then
			echo "demo-app (pid $pid) is still running after KILL" >&2
			return 1
		fi
	fi
	rm -f "$pidfile"
	echo "demo-app stopped (pid $pid)"
}

start() {
	if [ ! -x "$bin" ]; then
		echo "no executable $bin: is a release installed and current linked?" >&2
		return 1
	fi
	# A running instance is replaced, so start can be repeated.
	stop || return 1
	mkdir -p "$root/logs" "$root/run"
	# The app's output goes to the log, never to the hook's pipe, so the hook
	# ends when this script does.
	nohup "$bin" --addr "$addr" >>"$log" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"$pidfile"
	# Up means listening: a 503 from /healthz is verify's business, not ours.
	if "$bin" --probe "http://$addr/healthz" --wait 5s --pid "$pid"; then
		echo "demo-app started (pid $pid) on $addr"
		return 0
	fi
	if command -v tail >/dev/null 2>&1; then
		echo "last lines of $log:" >&2
		tail -n 5 "$log" >&2
	fi
	echo "demo-app did not come up on $addr (log: $log)" >&2
	kill -KILL "$pid" 2>/dev/null
	rm -f "$pidfile"
	return 1
}

case ${1:-} in
start) start ;;
stop) stop ;;
*)
	echo "usage: $0 start|stop" >&2
	exit 2
	;;
esac
