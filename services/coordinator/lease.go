package coordinator

import (
	"context"
	"time"
)

// releaseTimeout bounds the release of the lease at shutdown; a release
// that fails leaves the lease to expire.
const releaseTimeout = 2 * time.Second

// lead holds the lease, renewing it every Renew, until ctx is cancelled,
// then releases it. Losing it (a renewal that fails) stops the background
// work at once; another instance takes over when the lease expires.
func (c *Coordinator) lead(ctx context.Context) error {
	m := c.engine.metrics
	lease := c.cfg.Lease
	renew := lease.Renew()
	t := time.NewTicker(renew)
	defer t.Stop()
	for {
		// A renewal slower than its interval would outlive the lease.
		hctx, cancel := context.WithTimeout(ctx, renew)
		held, err := lease.Hold(hctx)
		cancel()
		if ctx.Err() != nil {
			break
		}
		switch was := m.leading(); {
		case held && !was:
			c.log.Info("lease taken: this instance does the background work", "instance", c.cfg.Instance)
		case !held && was:
			c.log.Warn("lease lost: another instance will do the background work", "instance", c.cfg.Instance, "err", err)
		case err != nil:
			c.log.Debug("cannot take the lease", "instance", c.cfg.Instance, "err", err)
		}
		m.lead(held)
		select {
		case <-ctx.Done():
		case <-t.C:
			continue
		}
		break
	}
	was := m.leading()
	m.lead(false)
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
	defer cancel()
	if err := lease.Release(rctx); err != nil {
		c.log.Warn("cannot release the lease; it expires", "instance", c.cfg.Instance, "err", err)
	} else if was {
		c.log.Info("lease released", "instance", c.cfg.Instance)
	}
	return nil
}
