package storage

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/caddyserver/certmagic"

	"github.com/caddy-dcr/caddy-dcr/internal/redistest"
)

// BenchmarkRedisCreate compares a registration's create as the script and
// as a transaction (see RedisStore.txFits), with the client index only
// (RFC 7591, MediaGoblin, IAM), with an owner's index too (Kustvakt), and
// with both capped as the default configuration caps them, and with the
// owner's cap full (every create refused), 64 creates at a time as under
// load. Besides the time per create it
// reports the CPU Redis itself spent on each (redis-µs/op, from INFO cpu),
// the cost a Redis shared by many Caddy instances pays for every
// registration:
//
//	go test -run '^$' -bench BenchmarkRedisCreate -benchtime 20000x ./storage
func BenchmarkRedisCreate(b *testing.B) {
	srv := redistest.Start(b)
	pool := NewRedisPool(RedisOptions{Addrs: []string{srv.Addr}})
	b.Cleanup(func() { pool.Destruct() })
	data := []byte(strings.Repeat("x", 600)) // about a client's stored size
	var seq atomic.Int64
	for _, tx := range []bool{false, true} {
		for _, shape := range []string{"", "/owner", "/owner+caps", "/owner+full"} {
			name := map[bool]string{false: "script", true: "transaction"}[tx] + shape
			b.Run(name, func(b *testing.B) {
				pool.tx.Store(tx)
				s := pool.Store(uniquePrefix())
				tags := []string{"clients"}
				var caps []Cap
				if shape != "" {
					tags = append(tags, "owner:alice")
				}
				switch shape {
				case "/owner+caps":
					// The default configuration's caps, never reached here.
					caps = []Cap{{Tag: "clients", Max: 1 << 30}, {Tag: "owner:alice", Max: 1 << 30}}
				case "/owner+full":
					// An owner at max_clients_per_owner: every create refused.
					caps = []Cap{{Tag: "clients", Max: 1 << 30}, {Tag: "owner:alice", Max: 100}}
					for i := range 100 {
						if err := s.Create(context.Background(), &Record{ID: fmt.Sprint("full", i), Data: data, Tags: tags, FreshID: true}, caps...); err != nil {
							b.Fatal(err)
						}
					}
				}
				cpu0 := redisCPU(b, srv)
				b.SetParallelism(32) // 64 goroutines on 2 cores
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					ctx := context.Background()
					for pb.Next() {
						id := fmt.Sprint("bench", seq.Add(1))
						err := s.Create(ctx, &Record{ID: id, Data: data, Tags: tags, FreshID: true}, caps...)
						var le *LimitError
						if err != nil && (shape != "/owner+full" || !errors.As(err, &le)) {
							b.Error(err)
							return
						}
					}
				})
				b.StopTimer()
				b.ReportMetric((redisCPU(b, srv)-cpu0)*1e6/float64(b.N), "redis-µs/op")
			})
		}
	}
}

// redisCPU returns the CPU seconds Redis has used so far.
func redisCPU(b *testing.B, srv *redistest.Server) float64 {
	b.Helper()
	var total float64
	for line := range strings.SplitSeq(srv.CLI("info", "cpu"), "\n") {
		for _, f := range []string{"used_cpu_sys:", "used_cpu_user:"} {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), f); ok {
				x, err := strconv.ParseFloat(v, 64)
				if err != nil {
					b.Fatalf("INFO cpu: %q", line)
				}
				total += x
			}
		}
	}
	return total
}

// BenchmarkEmbeddedCreate measures a create on the embedded store, on
// Caddy's file system storage in a temporary directory (a client and its
// index marker: the files, their syncs and the directories' syncs).
func BenchmarkEmbeddedCreate(b *testing.B) {
	s := NewEmbeddedStore(&certmagic.FileStorage{Path: b.TempDir()}, "cr")
	ctx := context.Background()
	b.ResetTimer()
	for i := range b.N {
		if err := s.Create(ctx, &Record{ID: strconv.Itoa(i), Data: []byte("x"), Tags: []string{"clients"}}); err != nil {
			b.Fatal(err)
		}
	}
}
