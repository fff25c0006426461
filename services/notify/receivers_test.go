package notify_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/upshift/upshift/pkg/events"
)

// hookReceiver is a webhook endpoint that checks every request's signature
// itself, by the Standard Webhooks convention, and answers as answer says
// for the n-th request (1 first): "ok", "fail" (503), "hang" (until the
// sender gives up) or "refuse" (400).
type hookReceiver struct {
	srv    *httptest.Server
	secret string
	answer func(n int) string

	mu       sync.Mutex
	requests []hookRequest
}

// hookRequest is what one request brought and how it was answered.
type hookRequest struct {
	id, timestamp, signature string
	body                     []byte
	validSignature           bool
	accepted                 bool
}

func newHookReceiver(t *testing.T, answer func(n int) string) *hookReceiver {
	key := make([]byte, 24)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	h := &hookReceiver{secret: "whsec_" + base64.StdEncoding.EncodeToString(key), answer: answer}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := hookRequest{id: r.Header.Get("webhook-id"), timestamp: r.Header.Get("webhook-timestamp"),
			signature: r.Header.Get("webhook-signature"), body: body}
		req.validSignature = verify(key, req)
		h.mu.Lock()
		h.requests = append(h.requests, req)
		n := len(h.requests)
		h.mu.Unlock()
		switch a := answer(n); a {
		case "ok":
			if r.Context().Err() != nil {
				return
			}
			w.WriteHeader(http.StatusNoContent)
			h.mu.Lock()
			h.requests[n-1].accepted = true
			h.mu.Unlock()
		case "hang":
			<-r.Context().Done()
		case "refuse":
			w.WriteHeader(http.StatusBadRequest)
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// verify checks a request's signature from first principles: the key
// signs "id.timestamp.body" with HMAC-SHA256, sent base64 as "v1,<sig>"
// among space-separated signatures, with a timestamp within 5 minutes.
func verify(key []byte, r hookRequest) bool {
	ts, err := strconv.ParseInt(r.timestamp, 10, 64)
	if err != nil || r.id == "" || time.Since(time.Unix(ts, 0)).Abs() > 5*time.Minute {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(r.id + "." + r.timestamp + "." + string(r.body)))
	want := mac.Sum(nil)
	for _, sig := range strings.Fields(r.signature) {
		b64, ok := strings.CutPrefix(sig, "v1,")
		got, err := base64.StdEncoding.DecodeString(b64)
		if ok && err == nil && hmac.Equal(got, want) {
			return true
		}
	}
	return false
}

func (h *hookReceiver) all() []hookRequest {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookRequest(nil), h.requests...)
}

// accepted are the requests answered 2xx.
func (h *hookReceiver) accepted() []hookRequest {
	var out []hookRequest
	for _, r := range h.all() {
		if r.accepted {
			out = append(out, r)
		}
	}
	return out
}

// noticeID reads the CloudEvent id of a request's body.
func noticeID(t *testing.T, body []byte) string {
	env, err := events.Decode(body)
	if err != nil {
		t.Fatalf("webhook body is not a CloudEvent: %v: %s", err, body)
	}
	return env.ID
}

// chatReceiver is a Slack-compatible incoming webhook.
type chatReceiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies [][]byte
}

func newChatReceiver(t *testing.T) *chatReceiver {
	c := &chatReceiver{}
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.Header.Get("Content-Type") != "application/json" {
			w.WriteHeader(http.StatusUnsupportedMediaType)
			return
		}
		c.mu.Lock()
		c.bodies = append(c.bodies, b)
		c.mu.Unlock()
		io.WriteString(w, "ok")
	}))
	t.Cleanup(c.srv.Close)
	return c
}

func (c *chatReceiver) messages(t *testing.T) []map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []map[string]any
	for _, b := range c.bodies {
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("chat body %s: %v", b, err)
		}
		out = append(out, m)
	}
	return out
}

// mailServer is an SMTP server in the test: STARTTLS with a certificate
// made here, AUTH PLAIN required before any mail.
type mailServer struct {
	addr string
	ca   *x509.CertPool
	user string
	pass string

	mu    sync.Mutex
	mails []receivedMail
}

type receivedMail struct {
	from string
	to   []string
	data []byte
	tls  bool
}

func newMailServer(t *testing.T) *mailServer {
	cert, pool := selfSigned(t)
	m := &mailServer{ca: pool, user: "upshift", pass: "s3cret-mail-pass"}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		_, isTLS := c.TLSConnectionState()
		return &mailSession{srv: m, tls: isTLS, conn: c}, nil
	}))
	s.Domain = "localhost"
	s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.addr = l.Addr().String()
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return m
}

func (m *mailServer) received() []receivedMail {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]receivedMail(nil), m.mails...)
}

type mailSession struct {
	srv    *mailServer
	conn   *smtp.Conn
	tls    bool
	authed bool
	cur    receivedMail
}

func (s *mailSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *mailSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.srv.user || pass != s.srv.pass {
			return errors.New("bad credentials")
		}
		s.authed = true
		return nil
	}), nil
}

func (s *mailSession) Mail(from string, _ *smtp.MailOptions) error {
	if !s.authed {
		return smtp.ErrAuthRequired
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.cur = receivedMail{from: from, tls: isTLS}
	return nil
}

func (s *mailSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *mailSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = b
	s.srv.mu.Lock()
	s.srv.mails = append(s.srv.mails, s.cur)
	s.srv.mu.Unlock()
	return nil
}

func (s *mailSession) Reset()        {}
func (s *mailSession) Logout() error { return nil }

// selfSigned makes a certificate for 127.0.0.1 and the pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "upshift test smtp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}
