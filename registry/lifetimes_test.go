package registry

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/caddy-dcr/caddy-dcr/storage"
	"github.com/caddyserver/certmagic"
)

// TestLifetimesOfTheClientsAPI: handlers of two APIs share a store, each
// with its own lifetimes; reading or changing a client through the other
// API keeps the lifetimes of the one it was registered through.
func TestLifetimesOfTheClientsAPI(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	clock := func() time.Time { return now }
	store := storage.NewEmbeddedStore(&certmagic.FileStorage{Path: t.TempDir()}, "l")
	rfc := &Registry{Store: store, Now: clock, ClientLifetime: time.Hour}
	kv := &Registry{Store: store, Now: clock, ClientLifetime: 2 * time.Second, IdleLifetime: 720 * time.Hour}
	peers := map[string]*Registry{APIRFC7591: rfc, APIKustvakt: kv}
	for _, r := range peers {
		r.LifetimesOf = func(api string) *Registry { return peers[api] }
	}
	expiry := func(id string) time.Time {
		t.Helper()
		rec, err := store.Get(ctx, clientPrefix+id)
		if err != nil {
			t.Fatal(err)
		}
		return rec.ExpiresAt
	}

	iss, err := rfc.Register(ctx, &Client{API: APIRFC7591, TokenEndpointAuthMethod: AuthClientSecretBasic}, Issue{Format: FormatRFC7591})
	if err != nil {
		t.Fatal(err)
	}
	iss0 := iss.Client
	id := iss0.ID
	if iss0.EndsAt != iss0.Created().Add(time.Hour).Unix() || iss0.SecretExpiresAt != iss0.EndsAt {
		t.Fatalf("registered: client ends %d, secret expires %d, want both at the client_lifetime's end", iss0.EndsAt, iss0.SecretExpiresAt)
	}
	want := expiry(id)
	if want.IsZero() {
		t.Fatal("no expiry under client_lifetime")
	}

	now = now.Add(3 * time.Second) // past the Kustvakt handler's client_lifetime
	if _, err := kv.Get(ctx, id); err != nil {
		t.Fatalf("read through the other API: %v", err)
	}
	c, err := kv.Update(ctx, id, func(c *Client) error {
		c.SecretExpiresAt = kv.SecretExpiry(c, now, 0)
		return nil
	})
	if err != nil {
		t.Fatalf("change through the other API: %v", err)
	}
	if got := expiry(id); !got.Equal(want) {
		t.Errorf("expiry after a read and a change through the other API: %v, want %v", got, want)
	}
	if c.SecretExpiresAt != c.Created().Add(time.Hour).Unix() {
		t.Errorf("secret expiry %d, want the client's own end %d", c.SecretExpiresAt, c.Created().Add(time.Hour).Unix())
	}

	// A Kustvakt client takes the Kustvakt lifetimes, through either API.
	iss, err = kv.Register(ctx, &Client{API: APIKustvakt, TokenEndpointAuthMethod: AuthClientSecretBasic}, Issue{Format: FormatKustvakt})
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Second)
	if _, err := rfc.Update(ctx, iss.Client.ID, func(*Client) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if got, end := expiry(iss.Client.ID), iss.Client.Created().Add(2*time.Second); !got.Equal(end) {
		t.Errorf("Kustvakt client changed through RFC 7591: expiry %v, want %v", got, end)
	}

	// A client of an API no handler here serves (another Caddy's, or one a
	// reload removed) keeps the expiry it has: the reading handler's
	// lifetimes, recomputed from its creation, would end it at once.
	mg, err := New(store).Register(ctx, &Client{API: APIMediaGoblin, TokenEndpointAuthMethod: AuthClientSecretBasic}, Issue{Format: FormatMediaGoblin})
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(10 * time.Second) // past both handlers' client_lifetime
	for name, r := range peers {
		if _, err := r.Get(ctx, mg.Client.ID); err != nil {
			t.Fatalf("read through %s: %v", name, err)
		}
		c, err := r.Update(ctx, mg.Client.ID, func(c *Client) error {
			c.SecretExpiresAt = r.SecretExpiry(c, now, 0)
			return nil
		})
		if err != nil {
			t.Fatalf("change through %s: %v", name, err)
		}
		if c.SecretExpiresAt != 0 {
			t.Errorf("secret expiry after a change through %s: %d, want 0 (never)", name, c.SecretExpiresAt)
		}
		if got := expiry(mg.Client.ID); !got.IsZero() {
			t.Errorf("after a read and a change through %s the client expires at %v, want never", name, got)
		}
	}

	// Nor does such a Caddy know the client_lifetime of the client's API:
	// a secret it issues (a Kustvakt reset) still ends with the client,
	// whose end the record carries, or sooner under its own lifetime.
	elsewhere := &Registry{Store: store, Now: clock, LifetimesOf: func(string) *Registry { return nil }}
	for _, tc := range []struct {
		lifetime time.Duration
		want     int64
	}{
		{0, iss0.Created().Add(time.Hour).Unix()},
		{time.Minute, now.Add(time.Minute).Unix()},
	} {
		c, err := elsewhere.Update(ctx, iss0.ID, func(c *Client) error {
			c.SecretExpiresAt = elsewhere.SecretExpiry(c, now, tc.lifetime)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if c.SecretExpiresAt != tc.want {
			t.Errorf("secret issued with lifetime %v where the client's API is not served: expires %d, want %d", tc.lifetime, c.SecretExpiresAt, tc.want)
		}
	}
}

// TestLifetimesChangedByReload: a reload that lifts or lengthens a
// lifetime reaches existing clients at their next use or change (an idle
// deadline set under an idle_lifetime since removed would otherwise end a
// client in use); one that would bring a client's end forward, without an
// idle lifetime, leaves it as it is, and so does a secret issued then.
func TestLifetimesChangedByReload(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	clock := func() time.Time { return now }
	store := storage.NewEmbeddedStore(&certmagic.FileStorage{Path: t.TempDir()}, "r")
	reg := func(client, idle time.Duration) *Registry {
		return &Registry{Store: store, Now: clock, ClientLifetime: client, IdleLifetime: idle}
	}
	register := func(r *Registry) *Client {
		t.Helper()
		iss, err := r.Register(ctx, &Client{API: APIRFC7591, TokenEndpointAuthMethod: AuthClientSecretBasic}, Issue{Format: FormatRFC7591})
		if err != nil {
			t.Fatal(err)
		}
		return iss.Client
	}
	stored := func(id string) (time.Time, int64) {
		t.Helper()
		rec, err := store.Get(ctx, clientPrefix+id)
		if err != nil {
			t.Fatal(err)
		}
		c, err := decode(rec)
		if err != nil {
			t.Fatal(err)
		}
		return rec.ExpiresAt, c.EndsAt
	}
	change := func(r *Registry, id string) *Client {
		t.Helper()
		c, err := r.Update(ctx, id, func(c *Client) error {
			c.SecretExpiresAt = r.SecretExpiry(c, now, 0)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	read := func(r *Registry, id string) {
		t.Helper()
		if _, err := r.Get(ctx, id); err != nil {
			t.Fatal(err)
		}
	}

	// idle_lifetime removed: the next read, or change, lifts the deadline.
	a, b := register(reg(0, 4*time.Second)), register(reg(0, 4*time.Second))
	now = now.Add(2 * time.Second)
	read(reg(0, 0), a.ID)
	change(reg(0, 0), b.ID)
	for _, id := range []string{a.ID, b.ID} {
		if exp, end := stored(id); !exp.IsZero() || end != 0 {
			t.Errorf("idle_lifetime removed: expires %v, ends %d, want never", exp, end)
		}
	}

	// client_lifetime lengthened: pushed back, the recorded end with it.
	a, b = register(reg(3*time.Second, 0)), register(reg(3*time.Second, 0))
	now = now.Add(time.Second)
	read(reg(time.Hour, 0), a.ID)
	if c := change(reg(time.Hour, 0), b.ID); c.SecretExpiresAt != c.Created().Add(time.Hour).Unix() {
		t.Errorf("client_lifetime lengthened: secret expires %d, want the new end %d", c.SecretExpiresAt, c.Created().Add(time.Hour).Unix())
	}
	for _, c := range []*Client{a, b} {
		if exp, end := stored(c.ID); !exp.Equal(c.Created().Add(time.Hour)) || end != c.Created().Add(time.Hour).Unix() {
			t.Errorf("client_lifetime lengthened: expires %v, ends %d, want %v", exp, end, c.Created().Add(time.Hour))
		}
	}

	// client_lifetime added, or shortened, without idle_lifetime: kept, and
	// a secret issued then is not born expired.
	a, b = register(reg(0, 0)), register(reg(time.Hour, 0))
	now = now.Add(5 * time.Second)
	read(reg(2*time.Second, 0), a.ID)
	if c := change(reg(2*time.Second, 0), a.ID); c.SecretExpiresAt != 0 {
		t.Errorf("client_lifetime added: secret expires %d, want never (as the client)", c.SecretExpiresAt)
	}
	if exp, end := stored(a.ID); !exp.IsZero() || end != 0 {
		t.Errorf("client_lifetime added: expires %v, ends %d, want never", exp, end)
	}
	read(reg(2*time.Second, 0), b.ID)
	if c := change(reg(2*time.Second, 0), b.ID); c.SecretExpiresAt != b.Created().Add(time.Hour).Unix() {
		t.Errorf("client_lifetime shortened: secret expires %d, want the client's end %d", c.SecretExpiresAt, b.Created().Add(time.Hour).Unix())
	}
	if exp, end := stored(b.ID); !exp.Equal(b.Created().Add(time.Hour)) || end != b.Created().Add(time.Hour).Unix() {
		t.Errorf("client_lifetime shortened: expires %v, ends %d, want kept at %v", exp, end, b.Created().Add(time.Hour))
	}

	// With idle_lifetime, a client_lifetime shortened or added reaches
	// existing clients at their next use or change, at once (not once a
	// tenth of the idle lifetime passed), and one that ends them makes the
	// use or change find them expired, not answer for them.
	a, b = register(reg(0, time.Hour)), register(reg(time.Hour, time.Hour))
	c := register(reg(30*time.Second, time.Hour))
	now = now.Add(3 * time.Second)
	if _, err := reg(2*time.Second, time.Hour).Update(ctx, a.ID, func(*Client) error { return nil }); !errors.Is(err, ErrNotFound) {
		t.Errorf("change of a client ended by a client_lifetime added since: %v, want ErrNotFound", err)
	}
	if _, err := reg(2*time.Second, time.Hour).Get(ctx, b.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("read of a client ended by a client_lifetime shortened since: %v, want ErrNotFound", err)
	}
	// Ended, to an operator too; the record, which no read writes, can
	// still be deleted (and so stop counting at caps at once).
	for _, id := range []string{a.ID, b.ID} {
		if _, err := reg(2*time.Second, time.Hour).Peek(ctx, id); !errors.Is(err, ErrNotFound) {
			t.Errorf("an ended client is shown: %v", err)
		}
		if err := reg(2*time.Second, time.Hour).Delete(ctx, id, nil); err != nil {
			t.Errorf("delete of an ended client: %v", err)
		}
		if _, err := store.Get(ctx, clientPrefix+id); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("a deleted ended client is still stored: %v", err)
		}
	}

	got, err := reg(5*time.Second, time.Hour).Get(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	end := c.Created().Add(5 * time.Second)
	if got.EndsAt != end.Unix() || got.SecretExpiresAt != end.Unix() {
		t.Errorf("read after client_lifetime shortened to 5s: ends %d, secret expires %d, want both %d", got.EndsAt, got.SecretExpiresAt, end.Unix())
	}
	if exp, e := stored(c.ID); !exp.Equal(end) || e != end.Unix() {
		t.Errorf("read after client_lifetime shortened to 5s: stored expiry %v, end %d, want %v", exp, e, end)
	}

	// Records from before the fixed end was kept (none on record, an
	// expiry from client_lifetime), and clients whose only deadline an
	// idle_lifetime since removed left: not made immortal by a
	// client_lifetime in force, which ends them no sooner than they would.
	old := register(reg(time.Hour, 0))
	rec, err := store.Get(ctx, clientPrefix+old.ID)
	if err != nil {
		t.Fatal(err)
	}
	c0, _ := decode(rec)
	c0.EndsAt = 0
	next := *rec
	next.Data = encodeClient(c0)
	if err := store.Update(ctx, rec, &next); err != nil {
		t.Fatal(err)
	}
	read(reg(time.Hour, 0), old.ID)
	change(reg(time.Hour, 0), old.ID)
	if exp, end := stored(old.ID); !exp.Equal(old.Created().Add(time.Hour)) || end != old.Created().Add(time.Hour).Unix() {
		t.Errorf("record without a fixed end, client_lifetime unchanged: expires %v, ends %d, want %v", exp, end, old.Created().Add(time.Hour))
	}
	idle := register(reg(0, 10*time.Minute))
	idleExp, _ := stored(idle.ID)
	change(reg(time.Minute, 0), idle.ID) // idle_lifetime removed, a shorter client_lifetime added
	if exp, _ := stored(idle.ID); !exp.Equal(idleExp) {
		t.Errorf("idle_lifetime removed, client_lifetime 1m added: expires %v, want the idle deadline %v kept", exp, idleExp)
	}
	idle = register(reg(0, time.Minute))
	change(reg(time.Hour, 0), idle.ID) // and a longer one
	if exp, _ := stored(idle.ID); !exp.Equal(idle.Created().Add(time.Hour)) {
		t.Errorf("idle_lifetime removed, client_lifetime 1h added: expires %v, want %v", exp, idle.Created().Add(time.Hour))
	}
}

// TestTouchThrottle: handlers of one API with different idle lifetimes on
// one store do not write on every read, as they take turns.
func TestTouchThrottle(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	clock := func() time.Time { return now }
	store := storage.NewEmbeddedStore(&certmagic.FileStorage{Path: t.TempDir()}, "tt")
	a := &Registry{Store: store, Now: clock, IdleLifetime: 30 * 24 * time.Hour}
	b := &Registry{Store: store, Now: clock, IdleLifetime: 24 * time.Hour}
	iss, err := a.Register(ctx, &Client{API: APIRFC7591, TokenEndpointAuthMethod: AuthNone}, Issue{Format: FormatRFC7591})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		now = now.Add(time.Minute)
		r := a
		if i%2 == 1 {
			r = b
		}
		if _, err := r.Get(ctx, iss.Client.ID); err != nil {
			t.Fatal(err)
		}
	}
	rec, err := store.Get(ctx, clientPrefix+iss.Client.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Rev > 2 {
		t.Errorf("revision %d after ten reads through two handlers, want at most 2", rec.Rev)
	}
}

// TestInstallOfDeletedPlugin: an installation written after its plugin
// was deleted (an install racing a deregister) is taken back, and the
// install reports the plugin unknown.
func TestInstallOfDeletedPlugin(t *testing.T) {
	ctx := context.Background()
	store := storage.NewEmbeddedStore(&certmagic.FileStorage{Path: t.TempDir()}, "p")
	r := New(store)
	err := r.Install(ctx, &Installation{User: "alice", SuperClientID: "kalamar", ClientID: "gone"})
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("install of a deleted plugin: %v", err)
	}
	if recs, err := store.List(ctx, pluginInstallsTag("gone")); err != nil || len(recs) != 0 {
		t.Fatalf("installations left: %d, %v", len(recs), err)
	}
	if insts, err := r.Installed(ctx, "alice", "kalamar"); err != nil || len(insts) != 0 {
		t.Fatalf("listed: %d, %v", len(insts), err)
	}
}

// TestUninstallOfGonePlugin: the leftover installation of a plugin that is
// gone (expired, or deleted without its installations) is not installed:
// uninstalling it reports none, as Kustvakt does, and removes the leftover.
func TestUninstallOfGonePlugin(t *testing.T) {
	ctx := context.Background()
	store := storage.NewEmbeddedStore(&certmagic.FileStorage{Path: t.TempDir()}, "p")
	r := New(store)
	for _, id := range []string{"kept", "gone"} {
		rec, err := encode(&Client{ID: id, API: APIKustvakt, ClientName: id})
		if err != nil {
			t.Fatal(err)
		}
		if err := store.Create(ctx, rec); err != nil {
			t.Fatal(err)
		}
		if err := r.Install(ctx, &Installation{User: "alice", SuperClientID: "kalamar", ClientID: id}); err != nil {
			t.Fatal(err)
		}
	}
	rec, err := store.Get(ctx, clientPrefix+"gone")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Delete(ctx, rec); err != nil { // as an expiry does: installations stay
		t.Fatal(err)
	}
	if err := r.Uninstall(ctx, "alice", "kalamar", "gone"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("uninstall of a gone plugin: %v", err)
	}
	if _, err := store.Get(ctx, installationID("alice", "kalamar", "gone")); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("leftover installation: %v", err)
	}
	if err := r.Uninstall(ctx, "alice", "kalamar", "kept"); err != nil {
		t.Fatalf("uninstall: %v", err)
	}
}

// TestDeleteRemovesInstallations: deleting a client takes its
// installations with it, whether it is a plugin (with a source) or a
// client plugins/install installed anyway; so does purging a damaged one.
// Left behind, a register, install and deregister loop would pile them up
// without bound.
func TestDeleteRemovesInstallations(t *testing.T) {
	ctx := context.Background()
	store := storage.NewEmbeddedStore(&certmagic.FileStorage{Path: t.TempDir()}, "p")
	r := New(store)
	for _, c := range []*Client{
		{ID: "plugin", API: APIKustvakt, ClientName: "p", Source: json.RawMessage(`{"name":"p"}`)},
		{ID: "plain", API: APIKustvakt, ClientName: "c"},
		{ID: "damaged", API: APIKustvakt, ClientName: "d"},
	} {
		rec, err := encode(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := store.Create(ctx, rec); err != nil {
			t.Fatal(err)
		}
		for _, user := range []string{"alice", "bob"} {
			if err := r.Install(ctx, &Installation{User: user, SuperClientID: "kalamar", ClientID: c.ID}); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, id := range []string{"plugin", "plain"} {
		if err := r.Delete(ctx, id, nil); err != nil {
			t.Fatal(err)
		}
	}
	rec, err := store.Get(ctx, clientPrefix+"damaged")
	if err != nil {
		t.Fatal(err)
	}
	rec.Data = []byte("{")
	if err := store.Update(ctx, rec, &storage.Record{ID: rec.ID, Data: rec.Data, Tags: rec.Tags}); err != nil {
		t.Fatal(err)
	}
	if err := r.Purge(ctx, "damaged"); err != nil {
		t.Fatalf("purge: %v", err)
	}
	for _, user := range []string{"alice", "bob"} {
		if recs, err := store.List(ctx, installationTag(user, "kalamar")); err != nil || len(recs) != 0 {
			t.Fatalf("%s's installations left: %d, %v", user, len(recs), err)
		}
	}
}

// TestInstallationsIntoGoneClients: deleting a super client removes the
// installations made into it, which nobody could list or uninstall
// without its credentials; and installing prunes the user's installations
// into that super client of plugins that expired, so that install and
// expire, over and over, leaves nothing behind.
func TestInstallationsIntoGoneClients(t *testing.T) {
	ctx := context.Background()
	store := storage.NewEmbeddedStore(&certmagic.FileStorage{Path: t.TempDir()}, "p")
	r := New(store)
	for _, id := range []string{"front", "plugin", "exp1", "exp2"} {
		rec, err := encode(&Client{ID: id, API: APIKustvakt, ClientName: id})
		if err != nil {
			t.Fatal(err)
		}
		if err := store.Create(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	for _, user := range []string{"alice", "bob"} {
		if err := r.Install(ctx, &Installation{User: user, SuperClientID: "front", ClientID: "plugin", StoredSuper: true}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Delete(ctx, "front", nil); err != nil {
		t.Fatal(err)
	}
	if recs, err := store.List(ctx, pluginInstallsTag("plugin")); err != nil || len(recs) != 0 {
		t.Fatalf("installations into the deleted super client left: %d, %v", len(recs), err)
	}
	// An install whose super client is deleted while it runs (after its
	// credentials were checked) takes itself back.
	if err := r.Install(ctx, &Installation{User: "carol", SuperClientID: "front", ClientID: "plugin", StoredSuper: true}); !errors.Is(err, ErrSuperGone) {
		t.Fatalf("install into a deleted super client: %v", err)
	}
	if recs, err := store.List(ctx, pluginInstallsTag("plugin")); err != nil || len(recs) != 0 {
		t.Fatalf("installation into a deleted super client left: %d, %v", len(recs), err)
	}

	if err := r.Install(ctx, &Installation{User: "dave", SuperClientID: "kalamar", ClientID: "exp1"}); err != nil {
		t.Fatal(err)
	}
	rec, err := store.Get(ctx, clientPrefix+"exp1")
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Delete(ctx, rec); err != nil { // as an expiry does
		t.Fatal(err)
	}
	if err := r.Install(ctx, &Installation{User: "dave", SuperClientID: "kalamar", ClientID: "exp2"}); err != nil {
		t.Fatal(err)
	}
	recs, err := store.List(ctx, installationTag("dave", "kalamar"))
	if err != nil || len(recs) != 1 || recs[0].ID != installationID("dave", "kalamar", "exp2") {
		t.Fatalf("dave's installations: %d, %v", len(recs), err)
	}
}
