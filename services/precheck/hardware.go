package precheck

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/shirou/gopsutil/v4/cpu"
	"github.com/shirou/gopsutil/v4/disk"
	"github.com/shirou/gopsutil/v4/load"
	"github.com/shirou/gopsutil/v4/mem"

	"github.com/upshift/upshift/pkg/targets"
)

// hardware are the host's checks: free disk at the root (always), then
// available memory, CPUs and load when their thresholds are set.
func hardware(t targets.Target) []Check {
	p := t.Precheck
	timeout := p.Timeout.Duration
	threshold := ">= " + p.MinFreeDisk.String()
	if p.MinFreeDiskPercent > 0 {
		threshold += fmt.Sprintf(" and >= %g%%", p.MinFreeDiskPercent)
	}
	checks := []Check{{Name: "free disk", Threshold: threshold, Timeout: timeout,
		Run: func(ctx context.Context) Result { return freeDisk(ctx, t.Root, p.MinFreeDisk, p.MinFreeDiskPercent) }}}
	if p.MinMemory > 0 {
		checks = append(checks, Check{Name: "memory", Threshold: ">= " + p.MinMemory.String(), Timeout: timeout,
			Run: func(ctx context.Context) Result { return memory(ctx, p.MinMemory) }})
	}
	if p.MinCPUs > 0 {
		checks = append(checks, Check{Name: "cpus", Threshold: fmt.Sprintf(">= %d", p.MinCPUs), Timeout: timeout,
			Run: func(ctx context.Context) Result { return cpus(ctx, p.MinCPUs) }})
	}
	if p.MaxLoadPerCPU > 0 {
		checks = append(checks, Check{Name: "load", Threshold: fmt.Sprintf("<= %.2f per CPU", p.MaxLoadPerCPU), Timeout: timeout,
			Run: func(ctx context.Context) Result { return loadAvg(ctx, p.MaxLoadPerCPU) }})
	}
	return checks
}

func freeDisk(ctx context.Context, root string, minBytes targets.Bytes, minPercent float64) Result {
	if _, err := os.Stat(root); errors.Is(err, os.ErrNotExist) {
		return Result{Err: fmt.Errorf("target root %s does not exist", root)}
	}
	u, err := disk.UsageWithContext(ctx, root)
	if err != nil {
		return Result{Err: fmt.Errorf("read disk usage at %s: %w", root, err)}
	}
	free := targets.Bytes(u.Free)
	percent := 100 - u.UsedPercent
	r := Result{Value: fmt.Sprintf("%s (%.0f%%) free", free, percent)}
	switch {
	case free < minBytes:
		r.Err = fmt.Errorf("%s free at %s, need %s", free, root, minBytes)
	case percent < minPercent:
		r.Err = fmt.Errorf("%.1f%% of the disk at %s free, need %g%%", percent, root, minPercent)
	default:
		r.Detail = "at " + root
	}
	return r
}

func memory(ctx context.Context, need targets.Bytes) Result {
	v, err := mem.VirtualMemoryWithContext(ctx)
	if err != nil {
		return Result{Err: fmt.Errorf("read memory: %w", err)}
	}
	avail := targets.Bytes(v.Available)
	r := Result{Value: fmt.Sprintf("%s available of %s", avail, targets.Bytes(v.Total))}
	if avail < need {
		r.Err = fmt.Errorf("%s of memory available, need %s", avail, need)
	}
	return r
}

func cpus(ctx context.Context, need int) Result {
	n, err := cpu.CountsWithContext(ctx, true)
	if err != nil {
		return Result{Err: fmt.Errorf("count CPUs: %w", err)}
	}
	r := Result{Value: fmt.Sprint(n)}
	if n < need {
		r.Err = fmt.Errorf("%d logical CPUs, need %d", n, need)
	}
	return r
}

func loadAvg(ctx context.Context, most float64) Result {
	a, err := load.AvgWithContext(ctx)
	if err != nil {
		return Result{Err: fmt.Errorf("read load average: %w", err)}
	}
	n, err := cpu.CountsWithContext(ctx, true)
	if err != nil || n < 1 {
		return Result{Err: fmt.Errorf("count CPUs: %v", err)}
	}
	per := a.Load1 / float64(n)
	r := Result{Value: fmt.Sprintf("%.2f per CPU (%.2f on %d)", per, a.Load1, n)}
	if per > most {
		r.Err = fmt.Errorf("1-minute load %.2f per CPU, at most %.2f", per, most)
	}
	return r
}
