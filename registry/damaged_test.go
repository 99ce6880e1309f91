package registry

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/caddy-dcr/caddy-dcr/storage"
	"github.com/caddyserver/certmagic"
)

// TestDamagedClient: a stored record whose client cannot be decoded (the
// store reads its envelope) is a corrupt record: reading it fails as one,
// listings go on without it, Delete cannot remove it and Purge can, with
// its index entries; Purge refuses a client that reads well.
func TestDamagedClient(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	store := storage.NewEmbeddedStore(&certmagic.FileStorage{Path: dir}, "d")
	r := New(store)
	ids := make([]string, 2)
	for i := range ids {
		iss, err := r.Register(ctx, &Client{API: APIKustvakt, Owner: "alice", TokenEndpointAuthMethod: AuthNone}, Issue{Format: FormatKustvakt})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = iss.Client.ID
	}
	bad, good := ids[0], ids[1]
	file := filepath.Join(dir, "d", "records", hex.EncodeToString([]byte(clientPrefix+bad)))
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var env map[string]any
	if err := json.Unmarshal(b, &env); err != nil {
		t.Fatal(err)
	}
	env["data"] = []byte("\x7fnot a client")
	if b, err = json.Marshal(env); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}

	if _, err := r.Get(ctx, bad); !storage.Corrupt(err) {
		t.Fatalf("Get: %v, want a corrupt record", err)
	}
	for _, tag := range []string{TagClients, OwnerTag("alice")} {
		if cs, err := r.List(ctx, tag); err != nil || len(cs) != 1 || cs[0].ID != good {
			t.Fatalf("List %s: %v %v", tag, cs, err)
		}
	}
	if err := r.Delete(ctx, bad, nil); !storage.Corrupt(err) {
		t.Fatalf("Delete: %v", err)
	}
	if err := r.Purge(ctx, good); !errors.Is(err, ErrNotCorrupt) {
		t.Errorf("Purge of a readable client: %v", err)
	}
	if err := r.Purge(ctx, bad); err != nil {
		t.Fatal(err)
	}
	if err := r.Purge(ctx, bad); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Purge: %v", err)
	}
	for _, tag := range []string{TagClients, OwnerTag("alice")} {
		if n, err := store.Count(ctx, tag); n != 1 || err != nil {
			t.Errorf("%s after the purge: %d %v", tag, n, err)
		}
	}
}

// TestClientUnderAnotherID: a record holding another client than the one
// its key names (damage, or a hand-made copy) is a corrupt record, not
// that other client served under this id.
func TestClientUnderAnotherID(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	r := New(storage.NewEmbeddedStore(&certmagic.FileStorage{Path: dir}, "d"))
	var ids []string
	for range 2 {
		iss, err := r.Register(ctx, &Client{API: APIRFC7591, TokenEndpointAuthMethod: AuthNone}, Issue{Format: FormatRFC7591})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, iss.Client.ID)
	}
	read := func(id string) map[string]any {
		b, err := os.ReadFile(filepath.Join(dir, "d", "records", hex.EncodeToString([]byte(clientPrefix+id))))
		if err != nil {
			t.Fatal(err)
		}
		var env map[string]any
		if err := json.Unmarshal(b, &env); err != nil {
			t.Fatal(err)
		}
		return env
	}
	env := read(ids[0])
	env["data"] = read(ids[1])["data"]
	b, err := json.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "d", "records", hex.EncodeToString([]byte(clientPrefix+ids[0]))), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err := r.Get(ctx, ids[0]); !storage.Corrupt(err) {
		t.Fatalf("Get: %v %v, want a corrupt record", c, err)
	}
	if c, err := r.Get(ctx, ids[1]); err != nil || c.ID != ids[1] {
		t.Fatalf("the other client: %v %v", c, err)
	}
}
