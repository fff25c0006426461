package paper_test

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/paper"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/pkg/spec"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

var update = flag.Bool("update", false, "rewrite the golden files")

var t0 = time.Date(2026, 11, 28, 22, 0, 0, 0, time.UTC)

func request(t *testing.T) spec.Request {
	t.Helper()
	b, err := os.ReadFile("testdata/request.yaml")
	if err != nil {
		t.Fatal(err)
	}
	r, err := spec.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func registry(t *testing.T) *targets.Registry {
	t.Helper()
	reg, err := targets.Load("testdata/targets.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// step is a finished step: started at off minutes after t0, taking d.
func step(id string, p events.Phase, a events.Action, target string, batch int, off, d time.Duration, status saga.StepStatus, done int) saga.Step {
	at := t0.Add(off * time.Minute)
	return saga.Step{ID: id, Phase: p, Action: a, Target: target, Batch: batch, Attempt: 1, Status: status,
		DispatchedAt: at, StartedAt: at.Add(time.Second), FinishedAt: at.Add(time.Second + d), Done: done}
}

func precheckLines(disk string) []events.ReportLine {
	return []events.ReportLine{
		{Name: "disk", OK: true, Status: "pass", Value: disk + " free", Threshold: ">= 2GiB"},
		{Name: "os", OK: true, Status: "pass", Value: "ubuntu 24.04", Threshold: "ubuntu, >=22.04"},
		{Name: "artifact", OK: true, Status: "pass", Detail: "sha256 matches"},
	}
}

// recorded builds the sagas the report is tested on: one that succeeded
// and one that rolled back when web-3's verification failed.
func recorded(t *testing.T, rolledBack bool) saga.Saga {
	r := request(t).WithDefaults()
	s := saga.New("01J-billing", r, saga.Options{RequireApproval: true, Confirm: spec.Confirm{Roles: []string{"dev", "dba"}}}, t0)
	s.Confirmations = []saga.Confirmation{{Role: "dba", By: "dora", Comment: "on call", At: t0.Add(3 * time.Minute)},
		{Role: "dev", By: "dev-1", At: t0.Add(4 * time.Minute)}}
	s.Approval = &saga.Decision{Actor: "alice", Comment: "CAB-1234 approved", At: t0.Add(5 * time.Minute)}
	n := 0
	add := func(st saga.Step) *saga.Step {
		n++
		st.Done = n
		s.Steps = append(s.Steps, &st)
		return &st
	}
	for i, tg := range r.Spec.Targets {
		st := add(step("pre-"+tg, events.Precheck, events.ActionCheck, tg, 0, 1, 20*time.Second, saga.StepSucceeded, 0))
		st.Report = precheckLines(fmt.Sprintf("%d GiB", 10+i))
	}
	for i, tg := range r.Spec.Targets {
		st := add(step("bak-"+tg, events.Backup, events.ActionArchive, tg, 0, 60, 2*time.Minute, saga.StepSucceeded, 0))
		st.Output = map[string]string{"backup": "objectstore://upshift-backups/billing/" + tg + "/01J-billing",
			"archive_sha256": fmt.Sprintf("%064d", i), "bytes": "1048576", "databases": "1", "version": "4.1"}
		st.Report = []events.ReportLine{{Name: "archive", OK: true, Detail: "812 entries"},
			{Name: "verification", OK: true, Detail: "archive sha256 and all 812 entries match the manifest"}}
	}
	add(step("dep-web-1", events.Deploy, events.ActionApply, "web-1", 1, 63, time.Minute, saga.StepSucceeded, 0))
	add(step("dep-web-2", events.Deploy, events.ActionApply, "web-2", 1, 63, 70*time.Second, saga.StepSucceeded, 0))
	for _, tg := range []string{"web-1", "web-2"} {
		st := add(step("ver-"+tg, events.Verify, events.ActionProbe, tg, 1, 65, 3*time.Minute, saga.StepSucceeded, 0))
		st.Report = []events.ReportLine{{Name: "health", OK: true, Status: "pass"}, {Name: "error-rate", OK: true, Status: "pass", Value: "0.001", Threshold: "< 0.005"}}
	}
	add(step("dep-web-3", events.Deploy, events.ActionApply, "web-3", 2, 69, time.Minute, saga.StepSucceeded, 0))
	v3 := add(step("ver-web-3", events.Verify, events.ActionProbe, "web-3", 2, 71, 3*time.Minute, saga.StepSucceeded, 0))
	v3.Report = []events.ReportLine{{Name: "health", OK: true, Status: "pass"}, {Name: "error-rate", OK: true, Status: "pass", Value: "0.002", Threshold: "< 0.005"}}
	s.State, s.EnteredAt, s.UpdatedAt = saga.StateSucceeded, t0.Add(90*time.Minute), t0.Add(90*time.Minute)
	if !rolledBack {
		return s
	}
	v3.Status, v3.Reason = saga.StepFailed, "error-rate 0.031 >= 0.005"
	v3.Report[1] = events.ReportLine{Name: "error-rate", OK: false, Status: "fail", Value: "0.031", Threshold: "< 0.005", Detail: "3 of 3 measurements failed"}
	reason := "verify probe on web-3 failed: error-rate 0.031 >= 0.005"
	off := time.Duration(75)
	for _, c := range []struct{ orig, tg string }{{"dep-web-3", "web-3"}, {"dep-web-2", "web-2"}, {"dep-web-1", "web-1"}} {
		st := add(step("rb-"+c.tg, events.Deploy, events.ActionRollback, c.tg, 0, off, 40*time.Second, saga.StepSucceeded, 0))
		st.Compensates = c.orig
		off++
	}
	for _, tg := range []string{"web-3", "web-2", "web-1"} {
		st := add(step("rs-"+tg, events.Backup, events.ActionRestore, tg, 0, off, 90*time.Second, saga.StepSucceeded, 0))
		st.Compensates = "bak-" + tg
		off += 2
	}
	s.State, s.Previous, s.Reason = saga.StateRolledBack, saga.StateRollingBack, reason
	s.EnteredAt, s.UpdatedAt = t0.Add(off*time.Minute), t0.Add(off*time.Minute)
	return s
}

// history is an audit log with the saga events the coordinator published.
func history(t *testing.T, s saga.Saga) []sagastore.Entry {
	t.Helper()
	var out []sagastore.Entry
	for i, k := range []struct {
		kind, reason string
		at           time.Duration
	}{{"prechecking", "", 0}, {"awaiting_approval", "", 2}, {"backing_up", "", 60}, {string(s.State), s.Reason, 95}} {
		ev := events.SagaEvent{Saga: s.ID, Kind: k.kind, State: k.kind, Reason: k.reason, Seq: i + 1,
			Team: s.Request.Metadata.Team, Teams: s.Request.Spec.Notify}
		env, err := events.New(fmt.Sprintf("%s/%d", s.ID, i), events.TypeSaga, "upshift/coordinator", s.ID, 0, t0.Add(k.at*time.Minute), ev)
		if err != nil {
			t.Fatal(err)
		}
		b, err := events.Encode(env)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, sagastore.Entry{ID: "out/" + env.ID, Saga: s.ID, Seq: i + 1, At: env.Time,
			Direction: sagastore.Out, Type: events.TypeSaga, Subject: "upshift.events.saga", Event: b})
	}
	return out
}

func dryRun(t *testing.T) *saga.Saga {
	r := request(t).WithDefaults()
	r.Spec.DryRun = true
	s := saga.New("01J-dry", r, saga.Options{}, t0)
	for i, tg := range r.Spec.Targets {
		st := step("pre-"+tg, events.Precheck, events.ActionCheck, tg, 0, 1, 20*time.Second, saga.StepSucceeded, i+1)
		st.Report = precheckLines(fmt.Sprintf("%d GiB", 10+i))
		s.Steps = append(s.Steps, &st)
	}
	s.State, s.UpdatedAt = saga.StateChecked, t0.Add(2*time.Minute)
	return &s
}

func TestGolden(t *testing.T) {
	t.Parallel()
	env := &paper.Environment{Approval: true, ApprovalTimeout: 12 * time.Hour, RequireSignature: true, Rehearsal: "test",
		Windows: []spec.Window{{Days: []string{"sat", "sun"}, Start: "22:00", End: "04:00", TimeZone: "Europe/Berlin"}}}
	docs := map[string]func(*testing.T, paper.Lang) paper.Doc{
		"plan": func(t *testing.T, l paper.Lang) paper.Doc {
			return paper.Plan(paper.PlanInput{Request: request(t), Targets: registry(t), Environment: env, Date: t0}, l)
		},
		"plan-bare": func(t *testing.T, l paper.Lang) paper.Doc {
			r := request(t)
			r.Spec.Plan = nil
			return paper.Plan(paper.PlanInput{Request: r, Date: t0}, l)
		},
		"plan-dryrun": func(t *testing.T, l paper.Lang) paper.Doc {
			return paper.Plan(paper.PlanInput{Request: request(t), Targets: registry(t), DryRun: dryRun(t), Date: t0}, l)
		},
		"report-succeeded": func(t *testing.T, l paper.Lang) paper.Doc {
			s := recorded(t, false)
			return paper.Report(s, history(t, s), l)
		},
		"report-rolledback": func(t *testing.T, l paper.Lang) paper.Doc {
			s := recorded(t, true)
			return paper.Report(s, history(t, s), l)
		},
		"report-nohistory": func(t *testing.T, l paper.Lang) paper.Doc { return paper.Report(recorded(t, false), nil, l) },
	}
	for name, doc := range docs {
		for _, l := range []paper.Lang{paper.English, paper.Chinese} {
			for _, f := range []paper.Format{paper.Markdown, paper.HTML} {
				t.Run(fmt.Sprintf("%s.%s.%s", name, l, f), func(t *testing.T) {
					var buf bytes.Buffer
					if err := doc(t, l).Render(&buf, f); err != nil {
						t.Fatal(err)
					}
					if f == paper.HTML {
						wellFormed(t, buf.String())
					}
					golden(t, filepath.Join("testdata", fmt.Sprintf("%s.%s.%s.golden", name, l, f)), buf.Bytes())
				})
			}
		}
	}
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from what was rendered (go test -update rewrites it); got:\n%s", path, got)
	}
}

// wellFormed checks that every element the document opens is closed, in
// order, and that it holds no script.
var void = map[string]bool{"meta": true, "br": true, "hr": true, "img": true, "link": true, "input": true}

func wellFormed(t *testing.T, doc string) {
	t.Helper()
	z := html.NewTokenizer(strings.NewReader(doc))
	var open []string
	for {
		switch z.Next() {
		case html.ErrorToken:
			if z.Err() != io.EOF {
				t.Fatal(z.Err())
			}
			if len(open) > 0 {
				t.Fatalf("unclosed elements %v", open)
			}
			return
		case html.StartTagToken:
			name, _ := z.TagName()
			if string(name) == "script" {
				t.Fatal("the document holds a script element")
			}
			if !void[string(name)] {
				open = append(open, string(name))
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			if len(open) == 0 || open[len(open)-1] != string(name) {
				t.Fatalf("</%s> closes %v", name, open)
			}
			open = open[:len(open)-1]
		}
	}
}

// A request's text is shown, never interpreted, in either format.
func TestEscapesTheRequest(t *testing.T) {
	t.Parallel()
	d := paper.Plan(paper.PlanInput{Request: request(t), Date: t0}, paper.English)
	for _, tc := range []struct {
		f         paper.Format
		want, bad string
	}{
		{paper.HTML, "&lt;script&gt;alert(1)&lt;/script&gt; &amp; speed", "<script>"},
		{paper.Markdown, `defect \<script>alert(1)\</script> & speed`, "defect <script>"},
		{paper.Markdown, `4h \| too long`, "4h | too"},
	} {
		var buf bytes.Buffer
		if err := d.Render(&buf, tc.f); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(buf.String(), tc.want) || strings.Contains(buf.String(), tc.bad) {
			t.Errorf("%s: want %q and no %q in\n%s", tc.f, tc.want, tc.bad, buf.String())
		}
	}
}

func TestParseLangAndFormat(t *testing.T) {
	t.Parallel()
	if _, err := paper.ParseLang("fr"); err == nil {
		t.Error("fr accepted")
	}
	if _, err := paper.ParseFormat("pdf"); err == nil {
		t.Error("pdf accepted")
	}
	if l, err := paper.ParseLang("zh"); err != nil || l != paper.Chinese {
		t.Errorf("zh: %v %v", l, err)
	}
}
