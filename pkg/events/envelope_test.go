package events_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/upshift/upshift/pkg/events"
)

func command() events.Command {
	return events.Command{Step: events.StepID("s1", events.Deploy, events.ActionApply, "web-1", 1), Saga: "s1",
		Phase: events.Deploy, Action: events.ActionApply, Target: "web-1", Attempt: 1}
}

func TestRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.FixedZone("CET", 3600))
	c := command()
	env, err := events.New(c.Step, events.TypeCommand, "upshift/coordinator", "s1", 1, at, c)
	if err != nil {
		t.Fatal(err)
	}
	b, err := events.Encode(env)
	if err != nil {
		t.Fatal(err)
	}
	for _, attr := range []string{`"specversion":"1.0"`, `"upshiftsaga":"s1"`, `"upshiftattempt":1`,
		`"dataschema":"urn:upshift:schema:v1:io.upshift.command.issued"`, `"time":"2026-11-25T09:00:00Z"`} {
		if !strings.Contains(string(b), attr) {
			t.Errorf("encoded envelope lacks %s: %s", attr, b)
		}
	}
	got, err := events.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	var out events.Command
	if err := events.Open(got, events.TypeCommand, &out); err != nil {
		t.Fatal(err)
	}
	if out.Step != "s1.deploy.apply.web-1.1" || out.Target != "web-1" {
		t.Fatalf("decoded %+v", out)
	}
}

func TestDecodeRejects(t *testing.T) {
	valid := `{"specversion":"1.0","id":"a","type":"t","source":"s","time":"2026-01-01T00:00:00Z","dataschema":"urn:upshift:schema:v1:t","data":{"x":1}}`
	if _, err := events.Decode([]byte(valid)); err != nil {
		t.Fatalf("valid envelope refused: %v", err)
	}
	for _, tc := range []struct {
		name string
		in   string
		want error
		msg  string
	}{
		{"not json", `{`, events.ErrMalformed, ""},
		{"missing fields", `{"specversion":"1.0","data":{}}`, events.ErrMissingField, "[id type source dataschema time]"},
		{"null data", strings.Replace(valid, `{"x":1}`, `null`, 1), events.ErrMissingField, "data"},
		{"next major", strings.Replace(valid, "schema:v1", "schema:v2", 1), events.ErrUnknownSchema, "v2"},
		{"foreign schema", strings.Replace(valid, "urn:upshift:schema:v1:t", "https://x/y", 1), events.ErrUnknownSchema, ""},
		{"spec version", strings.Replace(valid, `"1.0"`, `"0.3"`, 1), events.ErrMalformed, "specversion"},
		{"content type", strings.Replace(valid, `"id"`, `"datacontenttype":"text/xml","id"`, 1), events.ErrMalformed, "datacontenttype"},
		{"too large", strings.Replace(valid, `{"x":1}`, `"`+strings.Repeat("a", events.MaxEventSize)+`"`, 1), events.ErrTooLarge, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := events.Decode([]byte(tc.in))
			if !errors.Is(err, tc.want) || !errors.Is(err, events.ErrMalformed) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("err %v, want %v containing %q", err, tc.want, tc.msg)
			}
		})
	}
}

func TestOpenChecksTypeAndRequiredFields(t *testing.T) {
	env, _ := events.New("a", events.TypeCommand, "s", "s1", 1, time.Now(), map[string]any{"step": "x", "extra": true})
	var c events.Command
	if err := events.Open(env, events.TypeStep, &c); !errors.Is(err, events.ErrWrongType) {
		t.Fatalf("wrong type accepted: %v", err)
	}
	err := events.Open(env, events.TypeCommand, &c)
	if !errors.Is(err, events.ErrMissingField) || !strings.Contains(err.Error(), "[saga phase action target]") {
		t.Fatalf("missing fields not reported: %v", err)
	}
	env, _ = events.New("a", events.TypeStep, "s", "s1", 1, time.Now(), events.StepResult{Step: "x", Saga: "s1",
		Phase: "deploy", Action: "apply", Target: "t", Status: "exploded"})
	var r events.StepResult
	if err := events.Open(env, events.TypeStep, &r); !errors.Is(err, events.ErrMalformed) {
		t.Fatalf("unknown status accepted: %v", err)
	}
}

func TestEncodeRefusesWhatDecodeWould(t *testing.T) {
	if _, err := events.Encode(events.Envelope{ID: "x"}); !errors.Is(err, events.ErrMissingField) {
		t.Fatalf("incomplete envelope encoded: %v", err)
	}
	big, _ := events.New("a", events.TypeCommand, "s", "", 0, time.Now(), strings.Repeat("a", events.MaxEventSize))
	if _, err := events.Encode(big); !errors.Is(err, events.ErrTooLarge) {
		t.Fatalf("oversize envelope encoded: %v", err)
	}
}

func TestSubjects(t *testing.T) {
	for got, want := range map[string]string{
		events.RequestSubject("ops"):                                      "upshift.request.ops",
		events.ControlSubject("s1", events.OpApprove):                     "upshift.control.s1.approve",
		events.CommandSubject(events.Deploy, events.ActionRollback, "w1"): "upshift.cmd.deploy.rollback.w1",
		events.CommandFilter(events.Deploy, "w1"):                         "upshift.cmd.deploy.*.w1",
		events.ResultSubject("s1", events.Verify, events.StatusFailed):    "upshift.evt.s1.verify.failed",
		events.ResultFilter(events.Verify):                                "upshift.evt.*.verify.>",
		events.SagaSubject("s1", "rolled_back"):                           "upshift.evt.s1.saga.rolled_back",
		events.NotifySubject("dba", "s1", "failed"):                       "upshift.notify.dba.s1.failed",
		events.TimerScheduleSubject("s1", 3):                              "upshift.timer.schedule.s1.3",
		events.DeadLetterSubject("EVENTS", "notify"):                      "upshift.dlq.EVENTS.notify",
	} {
		if got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	}
	for _, bad := range []string{"", "a.b", "a*", ">", "a b"} {
		if events.CheckToken(bad) == nil {
			t.Errorf("token %q accepted", bad)
		}
	}
}

// An event reads raw as it was written: no \u003e for '>' nor \u0026 for
// '&', in the data or in the envelope.
func TestEncodedEventsReadRaw(t *testing.T) {
	n := events.Notice{Saga: "s1", Team: "ops", Kind: events.KindStepFailed, Summary: "app 1.1 -> 1.2: <rolled back> & told"}
	env, err := events.New("s1/1.0/rolled_back/ops", events.TypeNotice, "upshift/test", "s1", 0, time.Now(), n)
	if err != nil {
		t.Fatal(err)
	}
	b, err := events.Encode(env)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "app 1.1 -> 1.2: <rolled back> & told") || strings.Contains(string(b), `\u00`) {
		t.Fatalf("encoded %s", b)
	}
	back, err := events.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	var got events.Notice
	if err := events.Open(back, events.TypeNotice, &got); err != nil || got.Summary != n.Summary {
		t.Fatalf("round trip: %+v %v", got, err)
	}
}
