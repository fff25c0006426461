package notify_test

import (
	"log/slog"
	"testing"

	"github.com/upshift/upshift/pkg/testlog"
	"github.com/upshift/upshift/services/notify"
	"github.com/upshift/upshift/services/notify/notifytest"
)

func TestLogChannelContract(t *testing.T) {
	notifytest.Run(t, func(t *testing.T) notifytest.Receiver {
		var out testlog.Buffer
		return notifytest.Receiver{
			Channel: notify.NewLogChannel(slog.New(slog.NewJSONHandler(&out, nil))),
			Received: func(t *testing.T) []string {
				var ids []string
				for _, l := range out.JSONLines(t) {
					if l["msg"] == "notice" {
						id, _ := l["id"].(string)
						ids = append(ids, id)
					}
				}
				return ids
			},
		}
	})
}
