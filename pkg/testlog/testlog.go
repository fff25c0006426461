// Package testlog gives a test a logger whose lines are kept with the test's
// own output: shown when the test fails (or under go test -v), next to the
// failure they explain, and dropped when it passes.
package testlog

import (
	"log/slog"
	"testing"
)

// New returns a debug-level logger writing to t.Output. Whatever logs
// through it must stop before t ends: the test's output is closed then.
func New(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}
