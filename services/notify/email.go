package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"os"
	"strings"
	"time"

	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/targets"
)

// HeaderNotice carries a notice's id in a mail, for a receiver (or a
// filter) to de-duplicate by; the Message-ID is derived from it too.
const HeaderNotice = "X-Upshift-Notice"

// EmailSpec is a mail channel in the routes file: for business departments,
// who read mail rather than chat.
type EmailSpec struct {
	// Server is host:port of the submission server (587). STARTTLS is
	// required: a password never crosses the network in clear.
	Server   string    `json:"server"`
	Username string    `json:"username,omitempty"`
	Password SecretRef `json:"password,omitzero"`
	From     string    `json:"from"`
	To       []string  `json:"to"`
	// CAFile holds the certificates that sign the server's, when not the
	// system's.
	CAFile  string           `json:"caFile,omitempty"`
	Timeout targets.Duration `json:"timeout,omitzero"`
}

func (s EmailSpec) check() error {
	var problems []string
	if _, _, err := net.SplitHostPort(s.Server); err != nil {
		problems = append(problems, "server: host:port is required")
	}
	if _, err := mail.ParseAddress(s.From); err != nil {
		problems = append(problems, "from: an address is required")
	}
	if len(s.To) == 0 {
		problems = append(problems, "to: at least one address is required")
	}
	for _, a := range s.To {
		if _, err := mail.ParseAddress(a); err != nil {
			problems = append(problems, fmt.Sprintf("to: %q is not an address", a))
		}
	}
	if s.Username != "" {
		if err := s.Password.check("password"); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, ", "))
	}
	return nil
}

// EmailConfig is a mail channel's settings, secrets resolved.
type EmailConfig struct {
	Server   string
	Username string
	Password string
	From     string
	To       []string
	// RootCAs verify the server's certificate; nil: the system's.
	RootCAs *x509.CertPool
	// Timeout bounds one attempt; 0: DefaultTimeout.
	Timeout time.Duration
}

type email struct {
	name string
	cfg  EmailConfig
	host string
}

// NewEmail returns a channel that mails each notice in full, plain text and
// HTML, over SMTP with STARTTLS and, given a username, AUTH PLAIN.
func NewEmail(name string, cfg EmailConfig) (Channel, error) {
	host, _, err := net.SplitHostPort(cfg.Server)
	if err != nil {
		return nil, fmt.Errorf("email %s: server %w", name, err)
	}
	cfg.Timeout = orDefault(cfg.Timeout)
	return &email{name: name, cfg: cfg, host: host}, nil
}

func loadCAs(path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

func (e *email) Name() string { return e.name }

func (e *email) Deliver(ctx context.Context, n events.Notice) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("email %s: %w", e.name, err)
	}
	msg, err := e.compose(n)
	if err != nil {
		return consumer.Permanent(fmt.Errorf("email %s: %w", e.name, err))
	}
	if err := e.send(ctx, msg); err != nil {
		var te *textproto.Error
		if errors.As(err, &te) && te.Code >= 500 {
			return consumer.Permanent(fmt.Errorf("email %s: %w", e.name, err))
		}
		return fmt.Errorf("email %s: %w", e.name, err)
	}
	return nil
}

// send is one SMTP session. A cancelled ctx closes the connection, so a
// shutting-down instance is not held by a slow server.
func (e *email) send(ctx context.Context, msg []byte) error {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", e.cfg.Server)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	c, err := smtp.NewClient(conn, e.host)
	if err != nil {
		conn.Close()
		return orCtx(ctx, err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); !ok {
		return consumer.Permanent(errors.New("the server does not offer STARTTLS"))
	}
	if err := c.StartTLS(&tls.Config{ServerName: e.host, RootCAs: e.cfg.RootCAs, MinVersion: tls.VersionTLS12}); err != nil {
		return orCtx(ctx, fmt.Errorf("starttls: %w", err))
	}
	if e.cfg.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", e.cfg.Username, e.cfg.Password, e.host)); err != nil {
			return orCtx(ctx, fmt.Errorf("auth: %w", err))
		}
	}
	if err := c.Mail(e.cfg.From); err != nil {
		return orCtx(ctx, fmt.Errorf("mail from: %w", err))
	}
	for _, to := range e.cfg.To {
		if err := c.Rcpt(to); err != nil {
			return orCtx(ctx, fmt.Errorf("rcpt to %s: %w", to, err))
		}
	}
	w, err := c.Data()
	if err != nil {
		return orCtx(ctx, fmt.Errorf("data: %w", err))
	}
	if _, err := w.Write(msg); err != nil {
		return orCtx(ctx, fmt.Errorf("data: %w", err))
	}
	if err := w.Close(); err != nil {
		return orCtx(ctx, fmt.Errorf("data: %w", err))
	}
	_ = c.Quit() // the message is accepted once DATA is
	return nil
}

// orCtx prefers ctx's error to the one a closed connection gave.
func orCtx(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// compose writes the mail: a subject, then the same message as plain text
// and as HTML (multipart/alternative).
func (e *email) compose(n events.Notice) ([]byte, error) {
	if strings.ContainsAny(n.ID, "\r\n") {
		return nil, fmt.Errorf("notice id %q would break the mail's header", n.ID)
	}
	m := Compose(n)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for _, part := range []struct{ typ, content string }{{"text/plain", m.Text()}, {"text/html", m.HTML()}} {
		h := textproto.MIMEHeader{}
		h.Set("Content-Type", part.typ+"; charset=utf-8")
		h.Set("Content-Transfer-Encoding", "quoted-printable")
		w, err := mw.CreatePart(h)
		if err != nil {
			return nil, err
		}
		qp := quotedprintable.NewWriter(w)
		if _, err := qp.Write([]byte(part.content)); err != nil {
			return nil, err
		}
		if err := qp.Close(); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	header := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	header("From", e.cfg.From)
	header("To", strings.Join(e.cfg.To, ", "))
	header("Subject", mime.QEncoding.Encode("utf-8", "[upshift] "+severityMark(m.Severity)+" "+m.Title))
	header("Date", time.Now().Format(time.RFC1123Z))
	header("Message-ID", "<"+WebhookID(n.ID, e.name)+"@upshift>")
	header(HeaderNotice, n.ID)
	header("MIME-Version", "1.0")
	header("Content-Type", "multipart/alternative; boundary="+mw.Boundary())
	b.WriteString("\r\n")
	b.Write(body.Bytes())
	return b.Bytes(), nil
}
