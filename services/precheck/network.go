package precheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/upshift/upshift/pkg/targets"
)

// network are the checks of the host's connections: each endpoint must
// accept a TCP connection, and a download must reach a minimum rate.
func network(t targets.Target) []Check {
	p := t.Precheck
	var checks []Check
	for _, e := range p.Endpoints {
		checks = append(checks, Check{Name: "tcp " + e.Label(), Threshold: "connects within " + e.Timeout.String(),
			Timeout: e.Timeout.Duration, Run: func(ctx context.Context) Result { return reach(ctx, e.Address) }})
	}
	if b := p.Bandwidth; b != nil {
		checks = append(checks, Check{Name: "bandwidth", Threshold: ">= " + b.MinRate.String() + "/s", Timeout: b.Timeout.Duration,
			Run: func(ctx context.Context) Result { return bandwidth(ctx, *b) }})
	}
	return checks
}

func reach(ctx context.Context, addr string) Result {
	start := time.Now()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return Result{Err: fmt.Errorf("connect to %s: %w", addr, unwrapOp(err))}
	}
	conn.Close()
	return Result{Value: "connected in " + time.Since(start).Round(time.Microsecond).String(), Detail: addr}
}

// unwrapOp drops the *net.OpError's repetition of the address.
func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}

// bandwidth downloads at most MaxBytes of the URL within the check's
// time-out and divides what arrived by the time it took. A download cut
// short by the time-out still measures: it is the rate that was reached.
func bandwidth(parent context.Context, b targets.BandwidthCheck) Result {
	// Stop a little before the check's own time-out, to measure rather
	// than be cut off.
	ctx, cancel := parent, context.CancelFunc(func() {})
	if deadline, ok := parent.Deadline(); ok {
		ctx, cancel = context.WithTimeout(parent, time.Until(deadline)*9/10)
	}
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.URL, nil)
	if err != nil {
		return Result{Err: fmt.Errorf("request: %w", withoutURL(err))}
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Result{Err: fmt.Errorf("download: %w", withoutURL(err))}
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return Result{Err: fmt.Errorf("download: HTTP %d", resp.StatusCode)}
	}
	limit := int64(b.MaxBytes)
	if limit <= 0 {
		limit = 8 << 20
	}
	n, err := io.Copy(io.Discard, io.LimitReader(resp.Body, limit))
	took := time.Since(start)
	if err != nil && (ctx.Err() == nil || parent.Err() != nil) {
		return Result{Err: fmt.Errorf("download: %w", err)}
	}
	if n == 0 {
		return Result{Err: errors.New("download: nothing arrived")}
	}
	rate := targets.Bytes(float64(n) / took.Seconds())
	r := Result{Value: fmt.Sprintf("%s/s (%s in %s)", rate, targets.Bytes(n), took.Round(time.Millisecond))}
	if rate < b.MinRate {
		r.Err = fmt.Errorf("%s/s, need %s/s", rate, b.MinRate)
	}
	return r
}
