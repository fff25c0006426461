package notify_test

import (
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/upshift/upshift/pkg/promreg"
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

// A fresh notify exports every channel's counter series at zero.
func TestChannelSeriesAtZeroFromTheStart(t *testing.T) {
	reg := prometheus.NewRegistry()
	notify.New(nil, notify.Config{Channels: []notify.Channel{notify.NewLogChannel(testlog.New(t))}}, testlog.New(t), reg)
	for _, r := range []string{notify.ResultDelivered, notify.ResultDuplicate, notify.ResultFailed} {
		v, err := promreg.Value(reg, "upshift_notifications_total", "channel", "log", "result", r)
		if err != nil || v != 0 {
			t.Errorf("%s: %v %v", r, v, err)
		}
		if n := testutil.CollectAndCount(reg, "upshift_notifications_total"); n != 4 {
			t.Fatalf("%d series, want one per result", n)
		}
	}
}
