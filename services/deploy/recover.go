package deploy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/targets"
)

// HookFile, in a target's root, holds the process id of the hook running
// on it: present only while a hook runs, or after the process that ran it
// died. A hook leads a process group of its own, so what it started can be
// ended with it.
const HookFile = ".upshift-hook"

// recoverLock bounds the wait for a target's lock at start-up: a target
// locked that long is being served by a live process, which needs no help.
const recoverLock = 2 * time.Second

// Recover implements phase.Recoverer. For each target, under its lock, it
// ends what is left of a hook whose service died, and starts the release
// in service if an apply stopped it and never started it again: the target
// serves again within seconds of a restart, not an ack wait later. The
// interrupted apply, delivered again, then runs from the start.
func (e *Executor) Recover(ctx context.Context) error {
	var errs []error
	for _, name := range e.Targets.Names() {
		t, err := e.Targets.Get(name)
		if err != nil {
			continue
		}
		if err := e.recoverTarget(ctx, t); err != nil {
			errs = append(errs, fmt.Errorf("recover %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

func (e *Executor) recoverTarget(ctx context.Context, t targets.Target) error {
	if _, err := os.Stat(t.Root); errors.Is(err, os.ErrNotExist) {
		return nil // nothing installed yet
	}
	lctx, cancel := context.WithTimeout(ctx, recoverLock)
	unlock, err := lockTarget(lctx, t.Root)
	cancel()
	if err != nil {
		return nil // held: a live process is at work on it
	}
	defer unlock()
	log := e.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &step{e: e, t: t, cmd: events.Command{Saga: "recovery", Target: t.Name},
		log: log.With("target", t.Name, "action", "recover")}
	s.endLeftoverHook()
	stopped := s.stopped()
	if stopped == "" {
		return nil
	}
	cur, err := s.installed()
	if err != nil || cur == "" {
		return err
	}
	s.log.Warn("an apply stopped this target and did not start it again; starting the release in service", "release", cur, "stopped", stopped)
	if err := s.hook(ctx, "start", t.Hooks.Start, s.hookEnv(cur, stopped)); err != nil {
		return err
	}
	s.clearStopped()
	s.log.Info("target serving again", "release", cur)
	return nil
}

// recordHook notes the running hook's process group, for endLeftoverHook.
func (s *step) recordHook(pid int) {
	if err := os.WriteFile(filepath.Join(s.t.Root, HookFile), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		s.log.Warn("cannot record the running hook", "err", err)
	}
}

func (s *step) forgetHook() {
	if err := os.Remove(filepath.Join(s.t.Root, HookFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("cannot remove the hook record", "err", err)
	}
}

// endLeftoverHook kills what remains of a hook a dead process started. It
// runs under the target's lock: a hook recorded then cannot be a live
// process's. The kernel kills the hook itself with its service (on Linux);
// what the hook had started in its group is ended here.
func (s *step) endLeftoverHook() {
	b, err := os.ReadFile(filepath.Join(s.t.Root, HookFile))
	if err != nil {
		return
	}
	pgid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err == nil && pgid > 1 && syscall.Kill(-pgid, 0) == nil {
		s.log.Warn("ending a hook left by a process that died", "pgid", pgid)
		if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil {
			s.log.Warn("cannot end the leftover hook", "pgid", pgid, "err", err)
		}
	}
	s.forgetHook()
}
