package notify

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/upshift/upshift/pkg/consumer"
	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/targets"
)

// SlackSpec is a Slack-compatible incoming webhook (Slack, Mattermost,
// Rocket.Chat and others take the same body) in the routes file. Its URL
// holds the token that lets one post, so it is a secret.
type SlackSpec struct {
	URL     SecretRef        `json:"url"`
	Timeout targets.Duration `json:"timeout,omitzero"`
}

func (s SlackSpec) check() error { return s.URL.check("url") }

// SlackBody is what an incoming webhook receives: text for every client
// and for the notification, blocks for those that show them.
type SlackBody struct {
	Text   string       `json:"text"`
	Blocks []SlackBlock `json:"blocks,omitempty"`
}

// SlackBlock is a section or a context block.
type SlackBlock struct {
	Type     string      `json:"type"`
	Text     *SlackText  `json:"text,omitempty"`
	Elements []SlackText `json:"elements,omitempty"`
}

// SlackText is a block's mrkdwn text.
type SlackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// NoticeMark starts the context block's text that carries a notice's id,
// the only place a chat receiver can find it.
const NoticeMark = "notice "

type slack struct {
	name    string
	url     string
	timeout time.Duration
	client  *http.Client
}

// NewSlack returns a channel posting the short form of each notice to a
// Slack-compatible incoming webhook.
func NewSlack(name, url string, timeout time.Duration, client *http.Client) (Channel, error) {
	if err := checkURL(url); err != nil {
		return nil, fmt.Errorf("slack %s: %w", name, err)
	}
	return &slack{name: name, url: url, timeout: orDefault(timeout), client: orClient(client)}, nil
}

func (s *slack) Name() string { return s.name }

func (s *slack) Deliver(ctx context.Context, n events.Notice) error {
	m := Compose(n)
	text := m.Short()
	body, err := json.Marshal(SlackBody{Text: text, Blocks: []SlackBlock{
		{Type: "section", Text: &SlackText{Type: "mrkdwn", Text: text}},
		{Type: "context", Elements: []SlackText{{Type: "mrkdwn", Text: NoticeMark + n.ID}}},
	}})
	if err != nil {
		return consumer.Permanent(fmt.Errorf("slack %s: %w", s.name, err))
	}
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	// Not signed (the URL is the credential), but a receiver that can read
	// it de-duplicates by it as a webhook's does.
	h.Set(HeaderWebhookID, WebhookID(n.ID, s.name))
	return post(ctx, s.client, s.timeout, "slack "+s.name, s.url, h, body)
}
