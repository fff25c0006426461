package notify_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"sync"
	"testing"

	"github.com/upshift/upshift/services/notify"
	"github.com/upshift/upshift/services/notify/notifytest"
)

// lockedBuffer is a log's output, read while it may be written.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) lines() [][]byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b.buf.Bytes()))
	for sc.Scan() {
		out = append(out, append([]byte(nil), sc.Bytes()...))
	}
	return out
}

func TestLogChannelContract(t *testing.T) {
	notifytest.Run(t, func(t *testing.T) notifytest.Receiver {
		var out lockedBuffer
		return notifytest.Receiver{
			Channel: notify.NewLogChannel(slog.New(slog.NewJSONHandler(&out, nil))),
			Received: func(t *testing.T) []string {
				var ids []string
				for _, l := range out.lines() {
					var rec struct {
						Msg string `json:"msg"`
						ID  string `json:"id"`
					}
					if err := json.Unmarshal(l, &rec); err != nil {
						t.Fatalf("log line %s: %v", l, err)
					}
					if rec.Msg == "notice" {
						ids = append(ids, rec.ID)
					}
				}
				return ids
			},
		}
	})
}
