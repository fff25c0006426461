// Package events is the contract between upshift's services: the CloudEvents
// 1.0 envelope every message travels in, the event types and their data, and
// the NATS subjects and streams they are published on.
//
// Everything another service may read is defined here, in one place, so that
// a change to the contract is a change to this package.
package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// SpecVersion is the CloudEvents version of every envelope.
const SpecVersion = "1.0"

// MaxEventSize bounds an encoded envelope. It is below the NATS default
// max_payload (1 MiB) so an accepted event can always be published.
const MaxEventSize = 512 << 10

// SchemaMajor is the major version of the data schemas this build speaks.
const SchemaMajor = 1

// Errors returned by Decode and Open. Every one of them wraps ErrMalformed, so
// a consumer can terminate such a message with a single errors.Is check.
var (
	ErrMalformed     = errors.New("malformed event")
	ErrTooLarge      = fmt.Errorf("%w: too large", ErrMalformed)
	ErrMissingField  = fmt.Errorf("%w: missing field", ErrMalformed)
	ErrUnknownSchema = fmt.Errorf("%w: unknown schema version", ErrMalformed)
	ErrWrongType     = fmt.Errorf("%w: unexpected type", ErrMalformed)
)

// Envelope is a CloudEvent in structured JSON mode, with upshift's extension
// attributes.
type Envelope struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Type            string          `json:"type"`
	Source          string          `json:"source"`
	Subject         string          `json:"subject,omitempty"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	DataSchema      string          `json:"dataschema"`
	Saga            string          `json:"upshiftsaga,omitempty"`
	Attempt         int             `json:"upshiftattempt,omitempty"`
	Data            json.RawMessage `json:"data"`
}

// New builds an envelope around data. The id must be deterministic for the
// fact it describes (see the *ID functions): it is also the Nats-Msg-Id that
// lets JetStream drop a re-publish.
func New(id, typ, source, saga string, attempt int, at time.Time, data any) (Envelope, error) {
	raw, err := marshal(data)
	if err != nil {
		return Envelope{}, fmt.Errorf("encode %s data: %w", typ, err)
	}
	return Envelope{
		SpecVersion:     SpecVersion,
		ID:              id,
		Type:            typ,
		Source:          source,
		Subject:         saga,
		Time:            at.UTC(),
		DataContentType: "application/json",
		DataSchema:      Schema(typ),
		Saga:            saga,
		Attempt:         attempt,
		Data:            raw,
	}, nil
}

// marshal is json.Marshal without HTML escaping: events are read raw by
// people and tools (`nats sub`, a log), where "1.1 -> 1.2" must not read
// "1.1 -\u003e 1.2". No event is embedded in HTML.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// Schema names the data schema of an event type at the current major version.
func Schema(typ string) string {
	return "urn:upshift:schema:v" + strconv.Itoa(SchemaMajor) + ":" + typ
}

var schemaRE = regexp.MustCompile(`^urn:upshift:schema:v([0-9]+):`)

// Encode serialises the envelope, refusing one that Decode would refuse.
func Encode(e Envelope) ([]byte, error) {
	if err := e.validate(); err != nil {
		return nil, err
	}
	b, err := marshal(e)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", e.Type, err)
	}
	if len(b) > MaxEventSize {
		return nil, fmt.Errorf("encode %s: %w: %d bytes, limit %d", e.Type, ErrTooLarge, len(b), MaxEventSize)
	}
	return b, nil
}

// Decode parses and checks an envelope. It does not look inside data; Open
// does that for a known type.
func Decode(b []byte) (Envelope, error) {
	var e Envelope
	if len(b) > MaxEventSize {
		return e, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(b), MaxEventSize)
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return e, e.validate()
}

func (e Envelope) validate() error {
	var missing []string
	for _, f := range []struct{ name, v string }{
		{"specversion", e.SpecVersion}, {"id", e.ID}, {"type", e.Type},
		{"source", e.Source}, {"dataschema", e.DataSchema},
	} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if e.Time.IsZero() {
		missing = append(missing, "time")
	}
	if len(bytes.TrimSpace(e.Data)) == 0 || bytes.Equal(bytes.TrimSpace(e.Data), []byte("null")) {
		missing = append(missing, "data")
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %v", ErrMissingField, missing)
	}
	if e.SpecVersion != SpecVersion {
		return fmt.Errorf("%w: specversion %q", ErrMalformed, e.SpecVersion)
	}
	if e.DataContentType != "" && e.DataContentType != "application/json" {
		return fmt.Errorf("%w: datacontenttype %q", ErrMalformed, e.DataContentType)
	}
	m := schemaRE.FindStringSubmatch(e.DataSchema)
	if m == nil {
		return fmt.Errorf("%w: %q", ErrUnknownSchema, e.DataSchema)
	}
	if major, _ := strconv.Atoi(m[1]); major != SchemaMajor {
		return fmt.Errorf("%w: v%s, this build speaks v%d", ErrUnknownSchema, m[1], SchemaMajor)
	}
	return nil
}

// Checker is implemented by data types that know their required fields.
type Checker interface{ Check() error }

// Open decodes the envelope's data into v after checking its type. Unknown
// fields are accepted (minor versions may add them); missing required fields
// are not, when v implements Checker.
func Open(e Envelope, typ string, v any) error {
	if typ != "" && e.Type != typ {
		return fmt.Errorf("%w: %q, want %q", ErrWrongType, e.Type, typ)
	}
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("%w: %s data: %v", ErrMalformed, e.Type, err)
	}
	if c, ok := v.(Checker); ok {
		if err := c.Check(); err != nil {
			return fmt.Errorf("%s data: %w", e.Type, err)
		}
	}
	return nil
}

// missing reports the names of empty required fields as ErrMissingField.
func missing(fields ...[2]string) error {
	var names []string
	for _, f := range fields {
		if f[1] == "" {
			names = append(names, f[0])
		}
	}
	if len(names) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %v", ErrMissingField, names)
}
