package view

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/saga"
	"github.com/upshift/upshift/services/coordinator/sagastore"
)

// Status writes a saga, its state and its steps.
func Status(w io.Writer, s saga.Saga) {
	r := s.Request
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "saga\t%s\n", s.ID)
	if r.Metadata.Name != "" {
		fmt.Fprintf(tw, "name\t%s\n", r.Metadata.Name)
	}
	fmt.Fprintf(tw, "request\t%s\n", r.Title())
	fmt.Fprintf(tw, "team\t%s (notify: %s)\n", r.Metadata.Team, strings.Join(r.Spec.Notify, ", "))
	fmt.Fprintf(tw, "environment\t%s\n", r.Metadata.Environment)
	fmt.Fprintf(tw, "targets\t%s in %d batch(es)\n", strings.Join(r.Spec.Targets, ", "), len(s.Batches))
	fmt.Fprintf(tw, "state\t%s since %s\n", s.State, s.EnteredAt.Local().Format(time.DateTime))
	if s.Reason != "" {
		fmt.Fprintf(tw, "reason\t%s\n", s.Reason)
	}
	if end := s.WatchEnds(); !end.IsZero() {
		fmt.Fprintf(tw, "watch\t%s, until %s (%s left)\n", s.Watch(), end.Local().Format(time.DateTime), left(end))
	}
	if !s.Deadline.IsZero() {
		fmt.Fprintf(tw, "deadline\t%s\n", s.Deadline.Local().Format(time.DateTime))
	}
	if s.Approval != nil {
		fmt.Fprintf(tw, "approved\tby %s at %s %s\n", s.Approval.Actor, s.Approval.At.Local().Format(time.DateTime), s.Approval.Comment)
	}
	for _, role := range s.Options.Confirm.Roles {
		if c, ok := s.Confirmed(role); ok {
			fmt.Fprintf(tw, "confirmed %s\tby %s at %s %s\n", role, c.By, c.At.Local().Format(time.DateTime), c.Comment)
		} else {
			fmt.Fprintf(tw, "confirmed %s\tnot yet (upshift confirm %s --role %s)\n", role, s.ID, role)
		}
	}
	if !s.AnnouncedAt.IsZero() {
		fmt.Fprintf(tw, "announced\tto %s at %s\n", strings.Join(s.Options.Announce.Teams, ", "), s.AnnouncedAt.Local().Format(time.DateTime))
	} else if !s.AnnounceAt.IsZero() {
		fmt.Fprintf(tw, "announcement\tto %s at %s\n", strings.Join(s.Options.Announce.Teams, ", "), s.AnnounceAt.Local().Format(time.DateTime))
	}
	if s.Cancel != nil {
		fmt.Fprintf(tw, "cancelled\tby %s at %s %s\n", s.Cancel.Actor, s.Cancel.At.Local().Format(time.DateTime), s.Cancel.Comment)
	}
	tw.Flush()
	if len(s.Steps) == 0 {
		return
	}
	fmt.Fprintln(w, "\nsteps")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  PHASE\tACTION\tTARGET\tBATCH\tSTATUS\tDISPATCHED\tTOOK\tDETAIL")
	for _, st := range s.Steps {
		took := ""
		if !st.FinishedAt.IsZero() && !st.StartedAt.IsZero() {
			took = st.FinishedAt.Sub(st.StartedAt).Round(time.Millisecond).String()
		}
		detail := st.Error
		if st.Late != "" {
			detail += fmt.Sprintf(" (reported %s after timing out)", st.Late)
		}
		if st.Compensates != "" {
			detail = strings.TrimSpace("undoes " + stepName(s, st.Compensates) + " " + detail)
		}
		if n := st.Executions(); n > 1 {
			detail = strings.TrimSpace(fmt.Sprintf("ran %d times (see runs) %s", n, detail))
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", st.Phase, st.Action, st.Target, st.Batch+1, st.Status,
			st.DispatchedAt.Local().Format("15:04:05"), took, oneLine(detail))
	}
	tw.Flush()
	for _, st := range s.Steps {
		if len(st.Runs) == 0 {
			continue
		}
		fmt.Fprintf(w, "\nruns of %s %s on %s (attempt %d)\n", st.Phase, st.Action, st.Target, st.Attempt)
		for i, r := range st.Runs {
			last := r.Progress
			if i == len(st.Runs)-1 && st.Status.Final() {
				last = strings.TrimSpace(string(st.Status) + " " + st.Error)
			}
			fmt.Fprintf(w, "  run %d (delivery %d) started %s: %s\n", i+1, r.N, r.StartedAt.Local().Format("15:04:05.000"), oneLine(last))
		}
	}
	for _, st := range s.Steps {
		if len(st.Report) > 0 {
			fmt.Fprintf(w, "\n%s %s on %s (attempt %d): %s\n", st.Phase, st.Action, st.Target, st.Attempt, st.Status)
			Report(w, st.Report)
		}
	}
}

// Report writes a step's report as a table, a line per check in the order
// the service reported them.
func Report(w io.Writer, lines []events.ReportLine) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  CHECK\tSTATUS\tVALUE\tTHRESHOLD\tTOOK\tDETAIL")
	for _, l := range lines {
		took := ""
		if l.Duration > 0 {
			took = l.Duration.Round(time.Millisecond).String()
			if l.Duration < time.Millisecond {
				took = l.Duration.Round(time.Microsecond).String()
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", l.Name, l.LineStatus(), cell(l.Value, 60), cell(l.Threshold, 40), took, oneLine(l.Detail))
	}
	tw.Flush()
}

// cell folds a value into a column of at most n bytes.
func cell(s string, n int) string {
	s = oneLine(s)
	if len(s) > n {
		cut := n
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func stepName(s saga.Saga, id string) string {
	if st, ok := s.Step(id); ok {
		return fmt.Sprintf("%s %s", st.Phase, st.Action)
	}
	return id
}

// List writes a table of sagas.
func List(w io.Writer, sums []sagastore.Summary) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tTEAM\tENV\tSOFTWARE\tFROM\tTO\tSTATE\tUPDATED")
	for _, s := range sums {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Name, s.Team, s.Environment, s.Software,
			s.From, s.To, s.State, s.UpdatedAt.Local().Format(time.DateTime))
	}
	tw.Flush()
}

// History writes a saga's audit log.
func History(w io.Writer, entries []sagastore.Entry) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "AT\tSEQ\tDIR\tTYPE\tSUBJECT\tNOTE")
	for _, e := range entries {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", e.At.Local().Format("15:04:05.000"), e.Seq, e.Direction, e.Type, e.Subject, e.Note)
	}
	tw.Flush()
}

// oneLine folds a multi-line detail (a hook's output) into one table cell.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " | ")), " ")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// left is the time until t, in whole seconds; none once it has passed.
func left(t time.Time) time.Duration {
	return max(time.Until(t), 0).Round(time.Second)
}
