package storage

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestSetLogger: go-redis's own messages about a failed dial reach the
// logger given to SetLogger (Caddy's, in the module) rather than stderr.
func TestSetLogger(t *testing.T) {
	var mu sync.Mutex
	var got []string
	SetLogger(func(m string) {
		mu.Lock()
		got = append(got, m)
		mu.Unlock()
	})
	defer SetLogger(func(string) {})
	p := NewRedisPool(RedisOptions{Addrs: []string{"127.0.0.1:1"}, Timeout: time.Second})
	defer p.Destruct()
	if err := p.Ping(context.Background()); !IsUnavailable(err) {
		t.Fatalf("ping of a closed port: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) == 0 || !strings.Contains(strings.Join(got, "\n"), "127.0.0.1:1") {
		t.Fatalf("go-redis logged %q", got)
	}
}
