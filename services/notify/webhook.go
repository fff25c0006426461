package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/targets"
)

// Headers of a signed delivery, per the Standard Webhooks convention
// (standardwebhooks.com).
const (
	HeaderWebhookID        = "webhook-id"
	HeaderWebhookTimestamp = "webhook-timestamp"
	HeaderWebhookSignature = "webhook-signature"
	// SecretPrefix starts a Standard Webhooks secret: whsec_<base64 key>.
	SecretPrefix = "whsec_"
)

// DefaultTimeout bounds one attempt to deliver over the network.
const DefaultTimeout = 10 * time.Second

// WebhookSpec is a webhook channel in the routes file.
type WebhookSpec struct {
	URL string `json:"url"`
	// Secret is the endpoint's signing secret, whsec_<base64>.
	Secret  SecretRef        `json:"secret"`
	Timeout targets.Duration `json:"timeout,omitzero"`
}

func (s WebhookSpec) check() error {
	if err := checkURL(s.URL); err != nil {
		return err
	}
	return s.Secret.check("secret")
}

func checkURL(u string) error {
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
		return errors.New("url: an http or https URL is required")
	}
	return nil
}

// WebhookID is the webhook-id of a notice's deliveries to a channel: the
// same for every attempt and after a restart of notify, different for each
// channel, so a receiver de-duplicates by it.
func WebhookID(noticeID, channel string) string {
	sum := sha256.Sum256([]byte(noticeID + "\x00" + channel))
	return "msg_" + hex.EncodeToString(sum[:16])
}

// Sign returns the webhook-signature of a delivery: v1,<base64 of the
// HMAC-SHA256 over "id.timestamp.body">, keyed by the secret's decoded key.
func Sign(key []byte, id string, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%d.", id, ts)
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// ParseSecret decodes a whsec_<base64> secret into its key.
func ParseSecret(secret string) ([]byte, error) {
	b64, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok {
		return nil, fmt.Errorf("a webhook secret starts with %s", SecretPrefix)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(key) < 16 {
		return nil, errors.New("a webhook secret is whsec_ and the base64 of at least 16 bytes")
	}
	return key, nil
}

// WebhookBody is the data of the CloudEvent a webhook receives: the notice
// and the message written for people.
type WebhookBody struct {
	events.Notice
	Title   string `json:"title"`
	Text    string `json:"text"`
	Next    string `json:"next"`
	Command string `json:"command"`
}

// webhook posts each notice as a CloudEvent in structured JSON, signed.
type webhook struct {
	name    string
	url     string
	key     []byte
	timeout time.Duration
	client  *http.Client
}

// NewWebhook returns a channel posting to url, signing with secret
// (whsec_<base64>); timeout bounds one attempt (0: DefaultTimeout); client
// nil is a default client.
func NewWebhook(name, url, secret string, timeout time.Duration, client *http.Client) (Channel, error) {
	key, err := ParseSecret(secret)
	if err != nil {
		return nil, fmt.Errorf("webhook %s: %w", name, err)
	}
	if err := checkURL(url); err != nil {
		return nil, fmt.Errorf("webhook %s: %w", name, err)
	}
	return &webhook{name: name, url: url, key: key, timeout: orDefault(timeout), client: orClient(client)}, nil
}

func (w *webhook) Name() string { return w.name }

func (w *webhook) Deliver(ctx context.Context, n events.Notice) error {
	m := Compose(n)
	at := n.Time
	if at.IsZero() {
		at = time.Now()
	}
	env, err := events.New(n.ID, events.TypeNotice, "upshift/notify", n.Saga, 0, at,
		WebhookBody{Notice: n, Title: m.Title, Text: m.Text(), Next: m.Next, Command: m.Command})
	if err != nil {
		return consumer.Permanent(fmt.Errorf("webhook %s: %w", w.name, err))
	}
	body, err := events.Encode(env)
	if err != nil {
		return consumer.Permanent(fmt.Errorf("webhook %s: %w", w.name, err))
	}
	id, ts := WebhookID(n.ID, w.name), time.Now().Unix()
	h := http.Header{}
	h.Set("Content-Type", "application/cloudevents+json; charset=utf-8")
	h.Set(HeaderWebhookID, id)
	h.Set(HeaderWebhookTimestamp, strconv.FormatInt(ts, 10))
	h.Set(HeaderWebhookSignature, Sign(w.key, id, ts, body))
	return post(ctx, w.client, w.timeout, "webhook "+w.name, w.url, h, body)
}

// post sends one attempt. A 2xx is a delivery; 408, 429, a 5xx or a network
// error is retried; any other answer is the receiver refusing the notice for
// good. Errors never quote the URL, which may hold a token.
func post(ctx context.Context, client *http.Client, timeout time.Duration, what, target string, h http.Header, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return consumer.Permanent(fmt.Errorf("%s: bad request", what))
	}
	req.Header = h
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, ctx.Err())
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // drop the URL
		}
		return fmt.Errorf("%s: %w", what, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return nil
	case c == http.StatusRequestTimeout || c == http.StatusTooManyRequests || c >= 500:
		return fmt.Errorf("%s: receiver answered %s", what, resp.Status)
	default:
		return consumer.Permanent(fmt.Errorf("%s: receiver refused: %s", what, resp.Status))
	}
}

func orDefault(d time.Duration) time.Duration {
	if d <= 0 {
		return DefaultTimeout
	}
	return d
}

func orClient(c *http.Client) *http.Client {
	if c == nil {
		return &http.Client{}
	}
	return c
}
