package backup_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/upshift/upshift/pkg/events"
	"github.com/upshift/upshift/pkg/natstest"
	"github.com/upshift/upshift/pkg/pgtest"
	"github.com/upshift/upshift/pkg/targets"
	"github.com/upshift/upshift/services/backup"
)

// Sizes of the benchmark's tree and database, in MiB: small for CI; set
// UPSHIFT_BENCH_TREE_MIB (e.g. 4096) and UPSHIFT_BENCH_DB_MIB (e.g. 300)
// for the figures in docs/architecture.md.
func benchSize(env string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(env)); err == nil && n > 0 {
		return n
	}
	return def
}

// BenchmarkBackupRestore archives and restores a generated tree (files of
// 1 MiB, half compressible) or a generated database, kept in the backup
// directory or in the Object Store, and reports the throughput (MiB/s of
// the tree or of the database's size on disk) and the process's peak
// memory: its resident set (VmHWM, reset before each run) and the Go heap
// in use (sampled). pg_dump and pg_restore are processes of their own and
// are not counted.
func BenchmarkBackupRestore(b *testing.B) {
	treeMiB := benchSize("UPSHIFT_BENCH_TREE_MIB", 64)
	dbMiB := benchSize("UPSHIFT_BENCH_DB_MIB", 16)
	for _, data := range []string{"tree", "database"} {
		for _, storage := range []string{"dir", "objectstore"} {
			b.Run(data+"/"+storage, func(b *testing.B) {
				root := filepath.Join(b.TempDir(), "web-1")
				mib := treeMiB
				var dbs []targets.Database
				if data == "tree" {
					generateTree(b, filepath.Join(root, "releases/1.0/data"), treeMiB)
				} else {
					must(b, os.MkdirAll(filepath.Join(root, "releases/1.0"), 0o755))
					url := pgtest.Database(b)
					mib = generateDatabase(b, url, dbMiB)
					dsn := filepath.Join(b.TempDir(), "dsn")
					must(b, os.WriteFile(dsn, []byte(url), 0o600))
					dbs = []targets.Database{{Name: "app", DSNFile: dsn}}
				}
				must(b, os.Symlink("releases/1.0", filepath.Join(root, "current")))
				reg, err := targets.New(map[string]targets.Target{"web-1": {Root: root, Databases: dbs}}, root)
				must(b, err)
				x := &backup.Executor{Targets: reg}
				if storage == "objectstore" {
					_, js := natstest.Start(b)
					x.Store = &backup.Store{JS: js}
				}
				b.SetBytes(int64(mib) << 20)
				b.ResetTimer()
				var archiveTime, restoreTime time.Duration
				var peakRSS, peakHeap uint64
				for i := range b.N {
					saga := fmt.Sprintf("s%d", i)
					cmd := command(events.ActionArchive, 1)
					cmd.Saga, cmd.Step = saga, saga+".archive"
					rss, heap, took := measure(b, func() {
						if out, err := x.Execute(context.Background(), cmd, func(string) {}); err != nil || out.Failed {
							b.Fatalf("archive: %+v %v", out, err)
						}
					})
					archiveTime += took
					peakRSS, peakHeap = max(peakRSS, rss), max(peakHeap, heap)
					if data == "tree" {
						// Every file to be written back.
						must(b, os.RemoveAll(filepath.Join(root, "releases/1.0/data")))
					}
					cmd.Action, cmd.Step = events.ActionRestore, saga+".restore"
					rss, heap, took = measure(b, func() {
						if out, err := x.Execute(context.Background(), cmd, func(string) {}); err != nil || out.Failed {
							b.Fatalf("restore: %+v %v", out, err)
						}
					})
					restoreTime += took
					peakRSS, peakHeap = max(peakRSS, rss), max(peakHeap, heap)
				}
				n := float64(b.N)
				b.ReportMetric(float64(mib)/(archiveTime.Seconds()/n), "backup-MiB/s")
				b.ReportMetric(float64(mib)/(restoreTime.Seconds()/n), "restore-MiB/s")
				b.ReportMetric(float64(peakRSS)/(1<<20), "peak-RSS-MiB")
				b.ReportMetric(float64(peakHeap)/(1<<20), "peak-heap-MiB")
			})
		}
	}
}

// measure runs f and returns the process's peak resident set during it
// (VmHWM, reset first), the peak Go heap in use (sampled every 10 ms) and
// how long it took.
func measure(b *testing.B, f func()) (rss, heap uint64, took time.Duration) {
	runtime.GC()
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) // resets VmHWM (Linux)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			heap = max(heap, ms.HeapInuse)
			select {
			case <-done:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	})
	start := time.Now()
	f()
	took = time.Since(start)
	close(done)
	wg.Wait()
	return vmHWM(b), heap, took
}

func vmHWM(b *testing.B) uint64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// generateTree writes mib files of 1 MiB under dir: the first half of each
// random bytes, the second half text, so gzip has work of both kinds.
func generateTree(b *testing.B, dir string, mib int) {
	must(b, os.MkdirAll(dir, 0o755))
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 1<<20)
	for i := range mib {
		for j := 0; j < len(buf)/2; j += 8 {
			v := r.Uint64()
			for k := range 8 {
				buf[j+k] = byte(v >> (8 * k))
			}
		}
		line := []byte(fmt.Sprintf("line of file %d, mostly the same text again and again\n", i))
		for j := len(buf) / 2; j < len(buf); j++ {
			buf[j] = line[j%len(line)]
		}
		sub := filepath.Join(dir, strconv.Itoa(i%32))
		must(b, os.MkdirAll(sub, 0o755))
		must(b, os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%05d", i)), buf, 0o644))
	}
}

// generateDatabase fills a table until the database holds about mib MiB
// and returns its size in MiB.
func generateDatabase(b *testing.B, url string, mib int) int {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	must(b, err)
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, `CREATE TABLE events (id bigserial PRIMARY KEY, at timestamptz NOT NULL, body text NOT NULL)`)
	must(b, err)
	// A row takes about 300 bytes with its index entry.
	rows := mib << 20 / 300
	for done := 0; done < rows; done += 100000 {
		_, err = conn.Exec(ctx, `INSERT INTO events (at, body) SELECT now() - i * interval '1 second', md5(i::text) || repeat(' payload', 28) || md5((i * 7)::text)
			FROM generate_series(1, $1::int) i`, min(100000, rows-done))
		must(b, err)
	}
	var size int64
	must(b, conn.QueryRow(ctx, `SELECT pg_database_size(current_database())`).Scan(&size))
	return int(size >> 20)
}
