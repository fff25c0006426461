package events

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
)

// Streams and the subjects they hold.
//
//	REQUESTS    upshift.request.<team>                  a user asks for an upgrade or maintenance run
//	            upshift.control.<saga>.<op>             an operator approves, rejects or cancels a saga
//	COMMANDS    upshift.cmd.<service>.<action>.<target> the coordinator commands a phase service (work queue)
//	EVENTS      upshift.evt.<saga>.<phase>.<status>     what a phase service did (started, progress, succeeded, failed)
//	            upshift.evt.<saga>.saga.<kind>          what the coordinator decided; with the above, the audit log
//	NOTIFY      upshift.notify.<team>.<saga>.<kind>     what a team subscribes to
//	TIMERS      upshift.timer.schedule.<saga>.<n>       a deadline, held by JetStream's message scheduler
//	            upshift.timer.fire.<saga>               the same deadline, delivered when it falls due
//	DEADLETTER  upshift.dlq.<stream>.<consumer>         a message a consumer terminated, with the reason
//	AUDIT       upshift.audit.<saga>                    the coordinator's audit log, when its store is JetStream KV
//	ADVISORIES  $JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.<stream>.<consumer>
//	                                                    the server's word that a message's last delivery was never settled
const (
	StreamRequests   = "REQUESTS"
	StreamCommands   = "COMMANDS"
	StreamEvents     = "EVENTS"
	StreamNotify     = "NOTIFY"
	StreamTimers     = "TIMERS"
	StreamDeadLetter = "DEADLETTER"
	StreamAudit      = "AUDIT"
	StreamAdvisories = "ADVISORIES"

	prefix = "upshift"
)

// Subject patterns of each stream.
var (
	RequestSubjects    = []string{prefix + ".request.>", prefix + ".control.>"}
	CommandSubjects    = []string{prefix + ".cmd.>"}
	EventSubjects      = []string{prefix + ".evt.>"}
	NotifySubjects     = []string{prefix + ".notify.>"}
	TimerSubjects      = []string{prefix + ".timer.>"}
	DeadLetterSubjects = []string{prefix + ".dlq.>"}
	AuditSubjects      = []string{prefix + ".audit.>"}
	AdvisorySubjects   = []string{maxDeliveries + ".>"}
)

// maxDeliveries prefixes the server's advisories about messages that
// reached a consumer's MaxDeliver without being acknowledged or terminated.
const maxDeliveries = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"

// MaxDeliveriesSubject is where the server announces a message of stream
// that consumer delivered for the last time and that was never settled.
func MaxDeliveriesSubject(stream, consumer string) string {
	return maxDeliveries + "." + stream + "." + consumer
}

// SagaToken is the phase token of the coordinator's own events.
const SagaToken = "saga"

// RequestSubject is where a team's requests are published.
func RequestSubject(team string) string { return join("request", team) }

// ControlSubject is where an operator's decision on a saga is published.
func ControlSubject(saga string, op ControlOp) string { return join("control", saga, string(op)) }

// CommandSubject is where the coordinator commands service to act on target.
func CommandSubject(service Phase, action Action, target string) string {
	return join("cmd", string(service), string(action), target)
}

// CommandFilter matches every command for one target of one service.
func CommandFilter(service Phase, target string) string {
	return join("cmd", string(service), "*", target)
}

// CommandConsumer names the durable consumer on COMMANDS of the instances
// of a service that serve one target alone; and, before one consumer served
// every target of an instance, the consumer of each target.
func CommandConsumer(service Phase, target string) string { return string(service) + "-" + target }

// TargetsConsumer names the durable consumer on COMMANDS of the instances
// of a service that serve a set of targets, whatever their order: for one
// target, CommandConsumer's name; for several, <service>_ and a digest of
// the set (a target's name has no '_', so the two kinds never meet). An
// instance started again resumes its consumer, and instances serving the
// same set share it, as a work queue.
func TargetsConsumer(service Phase, targets []string) string {
	set := slices.Clone(targets)
	slices.Sort(set)
	set = slices.Compact(set)
	if len(set) == 1 {
		return CommandConsumer(service, set[0])
	}
	sum := sha256.Sum256([]byte(strings.Join(set, "\n")))
	return string(service) + "_" + hex.EncodeToString(sum[:8])
}

// CommandTarget is the target of a command's subject (its last token).
func CommandTarget(subject string) string { return subject[strings.LastIndexByte(subject, '.')+1:] }

// ResultSubject is where a phase service reports on a step.
func ResultSubject(saga string, phase Phase, status Status) string {
	return join("evt", saga, string(phase), string(status))
}

// ResultFilter matches every report of one phase, for every saga.
func ResultFilter(phase Phase) string { return join("evt", "*", string(phase), ">") }

// SagaSubject is where the coordinator publishes what it decided.
func SagaSubject(saga, kind string) string { return join("evt", saga, SagaToken, kind) }

// SagaFilter matches every coordinator event of every saga.
func SagaFilter() string { return join("evt", "*", SagaToken, ">") }

// SagaEventsFilter matches every event, of any phase, of one saga.
func SagaEventsFilter(saga string) string { return join("evt", saga, ">") }

// NotifySubject is where a team receives a notice about a saga.
func NotifySubject(team, saga, kind string) string { return join("notify", team, saga, kind) }

// TimerScheduleSubject holds the schedule of one deadline of a saga.
func TimerScheduleSubject(saga string, n int) string {
	return join("timer", "schedule", saga, fmt.Sprint(n))
}

// TimerFireSubject is where a saga's deadlines are delivered.
func TimerFireSubject(saga string) string { return join("timer", "fire", saga) }

// TimerFireFilter matches every delivered deadline.
func TimerFireFilter() string { return join("timer", "fire", "*") }

// DeadLetterSubject is where a consumer reports a message it terminated.
func DeadLetterSubject(stream, consumer string) string { return join("dlq", stream, consumer) }

// AuditSubject holds the audit log of one saga.
func AuditSubject(saga string) string { return join("audit", saga) }

// CheckToken reports whether s can be one token of a subject: not empty, and
// free of the separator, the wildcards and white space.
func CheckToken(s string) error {
	if s == "" {
		return fmt.Errorf("empty subject token")
	}
	if strings.ContainsAny(s, ".*> \t\r\n") {
		return fmt.Errorf("subject token %q contains '.', '*', '>' or white space", s)
	}
	return nil
}

func join(parts ...string) string {
	return prefix + "." + strings.Join(parts, ".")
}
