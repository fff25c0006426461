package backup_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/upshift/upshift/pkg/bus"
	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/testlog"
	"github.com/upshift/upshift/services/backup"
)

func TestServiceArchivesAndRestoresOnCommand(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	_, js := natstest.Start(t)
	svc := backup.New(js, backup.Config{Instance: "backup@test", Targets: h.reg,
		Consumer: consumer.Config{AckWait: time.Second, MaxDeliver: 3, Backoff: []time.Duration{10 * time.Millisecond}},
	}, testlog.New(t), prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	natstest.Eventually(t, natstest.Patience, "service ready", svc.Ready)

	final := func(c events.Command) events.StepResult {
		t.Helper()
		c.Deadline, c.NotAfter = time.Now().Add(time.Minute), time.Now().Add(time.Minute)
		env, err := events.New(c.Step, events.TypeCommand, "test", c.Saga, c.Attempt, time.Now(), c)
		if err != nil {
			t.Fatal(err)
		}
		if err := bus.Publish(ctx, js, events.CommandSubject(c.Phase, c.Action, c.Target), env); err != nil {
			t.Fatal(err)
		}
		var res events.StepResult
		natstest.Eventually(t, natstest.Patience, "final report of "+c.Step, func() bool {
			for _, res = range natstest.ReadEvents[events.StepResult](t, js, events.StreamEvents, events.SagaEventsFilter(c.Saga), events.TypeStep) {
				if res.Step == c.Step && res.Status.Final() {
					return true
				}
			}
			return false
		})
		return res
	}

	res := final(command(events.ActionArchive, 1))
	b, err := os.ReadFile(filepath.Join(h.backupDir(), backup.ArchiveFile))
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != events.StatusSucceeded || res.Output["archive_sha256"] != sha(b) || len(res.Report) != 2 {
		t.Fatalf("archive result %+v", res)
	}

	h.write("shared/app.conf", "password=new\n", 0o640)
	restore := command(events.ActionRestore, 1)
	restore.Compensates = command(events.ActionArchive, 1).Step
	res = final(restore)
	conf, _ := os.ReadFile(h.path("shared/app.conf"))
	if res.Status != events.StatusSucceeded || res.Output["restored"] != "1" || string(conf) != "password=old\n" {
		t.Fatalf("restore result %+v, app.conf %q", res, conf)
	}
}
