package caddydcr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-dcr/caddy-dcr/handler"
	"github.com/caddy-dcr/caddy-dcr/internal/jsonw"
	"github.com/caddy-dcr/caddy-dcr/registry"
	"github.com/caddy-dcr/caddy-dcr/storage"
)

func init() {
	caddy.RegisterModule(AdminAPI{})
}

// activeStores lets the admin API reach the stores of the loaded handlers,
// by name: the Redis key prefix, or "caddy" for the embedded store. Two
// Redis deployments may use the same prefix; each store then also answers
// to prefix@addresses, and a bare prefix is refused as ambiguous.
var activeStores = &storeSet{m: map[string]*storeEntry{}}

type storeEntry struct {
	name, alt string // the short name and the one that is always unique
	// handlers are the registrations of the handlers using the store, in
	// the order they were provisioned: the newest one's settings apply.
	// A config that fails to load after some of its handlers were
	// provisioned takes their registrations back with it (Cleanup), so
	// the running config's settings apply again.
	handlers []*storeHandler
}

// storeHandler is one handler's registration in activeStores.
type storeHandler struct {
	api string
	reg *registry.Registry
	seq uint64 // the order of provisioning, across entries
}

type storeSet struct {
	mu  sync.Mutex
	m   map[string]*storeEntry // by a key unique to the store
	seq uint64                 // of the last storeHandler added
}

// add registers a handler's registry under the store's key; remove with
// the value returned.
func (s *storeSet) add(key, name, alt, api string, reg *registry.Registry) *storeHandler {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[key]
	if e == nil {
		e = &storeEntry{name: name, alt: alt}
		s.m[key] = e
	}
	s.seq++
	h := &storeHandler{api: api, reg: reg, seq: s.seq}
	e.handlers = append(e.handlers, h)
	return h
}

func (s *storeSet) remove(key string, h *storeHandler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[key]
	if e == nil {
		return
	}
	e.handlers = slices.DeleteFunc(e.handlers, func(x *storeHandler) bool { return x == h })
	if len(e.handlers) == 0 {
		delete(s.m, key)
	}
}

// lifetimesOf returns the registry of the newest handler of api on the
// store whose unique name is alt, or nil when none serves api: what a
// handler's registry.LifetimesOf asks for a client of another API.
func (s *storeSet) lifetimesOf(alt, api string) *registry.Registry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var found *storeHandler
	for _, e := range s.m {
		if e.alt != alt {
			continue
		}
		for _, h := range e.handlers {
			if h.api == api && (found == nil || h.seq > found.seq) {
				found = h
			}
		}
	}
	if found == nil {
		return nil
	}
	return found.reg
}

// get returns the registry the admin API uses for the named store, or the
// only one when name is "": that of the newest handler on it, whose
// LifetimesOf finds the lifetimes of each client's own API.
func (s *storeSet) get(name string) (*registry.Registry, error) {
	reg, _, err := s.getNamed(name)
	return reg, err
}

// getNamed is get, with the store's unique name (what ?store= takes), for
// the lines that log a change: with several stores, a client id alone
// does not say which was changed.
func (s *storeSet) getNamed(name string) (*registry.Registry, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var found []*storeEntry
	for _, e := range s.m {
		if name == "" || e.name == name || e.alt == name {
			found = append(found, e)
		}
	}
	// Handlers on the same data (addresses and prefix) whose connections
	// differ (a timeout, wait_replicas) have entries of their own: one
	// store all the same.
	if len(found) > 1 && name != "" {
		// A name that is some store's unique name picks that store
		// ("caddy" is the embedded store, also beside a Redis prefix
		// "caddy", whose unique name is caddy@addresses).
		if exact := slices.DeleteFunc(slices.Clone(found), func(e *storeEntry) bool { return e.alt != name }); len(exact) > 0 {
			found = exact
		}
	}
	if len(found) > 0 && !slices.ContainsFunc(found, func(e *storeEntry) bool { return e.alt != found[0].alt }) {
		// The newest handler's registry, from any of the entries (one
		// store, whatever the connection).
		var newest *storeHandler
		for _, e := range found {
			for _, h := range e.handlers {
				if newest == nil || h.seq > newest.seq {
					newest = h
				}
			}
		}
		return newest.reg, found[0].alt, nil
	}
	if len(found) == 0 {
		if name == "" {
			return nil, "", errors.New("no client_registration handler is loaded")
		}
		return nil, "", fmt.Errorf("no client_registration handler uses the store %q", name)
	}
	// Offer the short names where they are unique.
	count := map[string]int{}
	for _, e := range found {
		count[e.name]++
	}
	names := make([]string, 0, len(found))
	for _, e := range found {
		if count[e.name] == 1 {
			names = append(names, e.name)
		} else {
			names = append(names, e.alt)
		}
	}
	sort.Strings(names)
	names = slices.Compact(names)
	if name == "" {
		return nil, "", fmt.Errorf("%w: several stores are in use (%s): choose one with ?store=", errAmbiguousStore, strings.Join(names, ", "))
	}
	return nil, "", fmt.Errorf("%w: several stores are named %q (%s): choose one with ?store=", errAmbiguousStore, name, strings.Join(names, ", "))
}

// errAmbiguousStore is a request that must name its store: 400, where a
// store that is not there is 404 (a script would take a 404 for "no such
// client").
var errAmbiguousStore = errors.New("ambiguous store")

// storeName names this handler's store: its Redis key prefix (which is
// also what the admin API calls it), or "caddy" for the embedded store.
func (h *Handler) storeName() string {
	if h.Storage != nil && h.Storage.Redis != nil {
		p := caddy.NewReplacer().ReplaceAll(h.Storage.Redis.KeyPrefix, "")
		if p == "" {
			p = defaultKeyPrefix
		}
		return p
	}
	return "caddy"
}

// storeAltName is storeName with where the store's Redis is (see
// sharedStore.where): unique even when two Redis deployments use the same
// key prefix.
func (h *Handler) storeAltName(shared *sharedStore) string {
	if shared.redis != nil {
		return h.storeName() + "@" + shared.where
	}
	return "caddy"
}

// AdminAPI adds routes to Caddy's admin endpoint (localhost:2019 by
// default) for operators:
//
//	POST   /client_registration/initial_access_tokens        {"name","expires_in","uses"} -> the token, once
//	GET    /client_registration/initial_access_tokens        list (without the tokens)
//	DELETE /client_registration/initial_access_tokens/{id}   revoke
//	GET    /client_registration/clients[?owner=&api=]        summaries of the clients, oldest first
//	GET    /client_registration/clients/{client_id}          a client's summary (no secrets)
//	PATCH  /client_registration/clients/{client_id}          {"permitted": bool, "super": bool}
//	DELETE /client_registration/clients/{client_id}          remove (an abusive or stale client)
//	GET    /client_registration/clients/{client_id}/metadata  for an authorization server: RFC 7591 metadata
//	POST   /client_registration/clients/{client_id}/verify_secret  {"client_secret"} -> {"valid", "reason"}
//
// Each takes ?store=<key prefix or "caddy"> when handlers use several stores.
type AdminAPI struct{}

// CaddyModule returns the Caddy module information.
func (AdminAPI) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.client_registration",
		New: func() caddy.Module { return new(AdminAPI) },
	}
}

// Routes implements caddy.AdminRouter.
func (a AdminAPI) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/client_registration/", Handler: caddy.AdminHandlerFunc(a.serve)}}
}

// adminLog is the logger of the admin API's changes: the handlers' own
// (an operator filters one logger for every change to the clients).
func adminLog() *zap.Logger { return caddy.Log().Named("http.handlers.client_registration") }

// adminStoreKey holds, in an admin request's context, the unique name of
// the store it works on.
type adminStoreKey struct{}

// changeLog is the logger of the lines that say what an admin request
// changed: they name the store, which with several is not otherwise known.
func changeLog(r *http.Request) *zap.Logger {
	if s, _ := r.Context().Value(adminStoreKey{}).(string); s != "" {
		return adminLog().With(zap.String("store", s))
	}
	return adminLog()
}

func adminError(status int, format string, args ...any) error {
	return caddy.APIError{HTTPStatus: status, Err: fmt.Errorf(format, args...)}
}

// methodNotAllowed answers 405 with the Allow header RFC 9110 requires;
// Caddy's admin server keeps the headers set before it writes the error.
func methodNotAllowed(w http.ResponseWriter, allow ...string) error {
	w.Header().Set("Allow", strings.Join(allow, ", "))
	return adminError(http.StatusMethodNotAllowed, "use %s", strings.Join(allow, " or "))
}

func writeAdminJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// Once the status is sent, a failed write (the client went away) can
	// only be noted: returned, Caddy would try to answer it with a 500.
	if err := json.NewEncoder(w).Encode(v); err != nil {
		adminLog().Debug("admin API answer not fully written", zap.Error(err))
	}
	return nil
}

func (a AdminAPI) serve(w http.ResponseWriter, r *http.Request) error {
	err := a.route(w, r)
	// A store outage is answered as the APIs answer it: when to retry.
	// Caddy's admin server keeps the headers set before it writes the error.
	var apiErr caddy.APIError
	if !errors.As(err, &apiErr) {
		return err
	}
	if apiErr.HTTPStatus == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	if apiErr.HTTPStatus >= 400 && apiErr.HTTPStatus < 500 {
		// A refusal (no such client, a bad request) is the caller's
		// business: answered as Caddy's admin server answers errors, but
		// logged at debug level, where Caddy would log it as an error on
		// every lookup of a client that is not there.
		if apiErr.Message == "" && apiErr.Err != nil {
			apiErr.Message = apiErr.Err.Error()
		}
		adminLog().Debug("request refused", zap.String("method", r.Method), zap.String("uri", r.RequestURI),
			zap.Int("status_code", apiErr.HTTPStatus), zap.String("error", apiErr.Message))
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(apiErr.HTTPStatus)
		_ = json.NewEncoder(w).Encode(apiErr)
		return nil
	}
	return err
}

// adminRoute names the admin route of path and the id in it: "tokens",
// "token" (id), "clients", "client" (id), "metadata" (id) or
// "verify_secret" (id); "" for none.
func adminRoute(path string) (route, id string) {
	parts := strings.Split(strings.Trim(strings.TrimPrefix(path, "/client_registration/"), "/"), "/")
	switch {
	case len(parts) == 1 && parts[0] == "initial_access_tokens":
		return "tokens", ""
	case len(parts) == 2 && parts[0] == "initial_access_tokens":
		return "token", parts[1]
	case len(parts) == 1 && parts[0] == "clients":
		return "clients", ""
	case len(parts) == 2 && parts[0] == "clients":
		return "client", parts[1]
	case len(parts) == 3 && parts[0] == "clients" && (parts[2] == "metadata" || parts[2] == "verify_secret"):
		return parts[2], parts[1]
	}
	return "", ""
}

func (a AdminAPI) route(w http.ResponseWriter, r *http.Request) error {
	// Store calls run to their end (bounded by the store's own timeouts)
	// even if the client closes its side of the connection.
	r = r.WithContext(context.WithoutCancel(r.Context()))
	// An unknown route is a 404 whatever ?store= says.
	route, id := adminRoute(r.URL.Path)
	if route == "" {
		return adminError(http.StatusNotFound, "unknown client_registration admin route %q", r.URL.Path)
	}
	q := r.URL.Query()
	for k := range q {
		// A misspelled filter (?Owner=alice) would otherwise list every
		// client as if it had been applied.
		if k != "store" && (route != "clients" || (k != "owner" && k != "api")) {
			return adminError(http.StatusBadRequest, "unknown query parameter %q", k)
		}
	}
	if n := len(q["store"]); n > 1 {
		return adminError(http.StatusBadRequest, "store given %d times: one value only", n)
	}
	reg, store, err := activeStores.getNamed(q.Get("store"))
	if errors.Is(err, errAmbiguousStore) {
		return adminError(http.StatusBadRequest, "%v", err)
	}
	if err != nil {
		return adminError(http.StatusNotFound, "%v", err)
	}
	r = r.WithContext(context.WithValue(r.Context(), adminStoreKey{}, store))
	switch route {
	case "tokens":
		switch r.Method {
		case http.MethodPost:
			return a.issueToken(w, r, reg)
		case http.MethodGet:
			toks, err := reg.Tokens(r.Context())
			if err != nil {
				return adminError(http.StatusServiceUnavailable, "listing tokens: %v", err)
			}
			out := make([]tokenView, 0, len(toks))
			for _, t := range toks {
				out = append(out, viewToken(t))
			}
			return writeAdminJSON(w, http.StatusOK, out)
		}
		return methodNotAllowed(w, http.MethodGet, http.MethodPost)
	case "token":
		if r.Method != http.MethodDelete {
			return methodNotAllowed(w, http.MethodDelete)
		}
		err := reg.RevokeToken(r.Context(), id)
		if errors.Is(err, registry.ErrNotFound) {
			return adminError(http.StatusNotFound, "no initial access token %q", id)
		}
		if err != nil {
			return adminError(http.StatusServiceUnavailable, "revoking token: %v", err)
		}
		changeLog(r).Info("initial access token revoked", zap.String("token_id", id), zap.String("by", "admin API"))
		w.WriteHeader(http.StatusNoContent)
		return nil
	case "clients":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return methodNotAllowed(w, http.MethodGet, http.MethodHead)
		}
		return a.listClients(w, r, reg)
	case "client":
		return a.client(w, r, reg, id)
	case "metadata":
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			return methodNotAllowed(w, http.MethodGet, http.MethodHead)
		}
		return a.clientMetadata(w, r, reg, id)
	default: // verify_secret
		if r.Method != http.MethodPost {
			return methodNotAllowed(w, http.MethodPost)
		}
		return a.verifySecret(w, r, reg, id)
	}
}

type tokenView struct {
	ID        string `json:"id"`
	Name      string `json:"name,omitempty"`
	Token     string `json:"token,omitempty"`
	CreatedAt int64  `json:"created_at"`
	ExpiresAt int64  `json:"expires_at,omitempty"`
	Uses      int    `json:"uses,omitempty"`
	Used      int    `json:"used"`
}

func viewToken(t *registry.InitialAccessToken) tokenView {
	v := tokenView{ID: t.ID, Name: t.Name, CreatedAt: t.CreatedMs / 1000, Uses: t.Uses, Used: t.Used}
	if t.ExpiresMs > 0 {
		v.ExpiresAt = t.ExpiresMs / 1000
	}
	return v
}

func (a AdminAPI) issueToken(w http.ResponseWriter, r *http.Request, reg *registry.Registry) error {
	var req struct {
		Name      string          `json:"name"`
		ExpiresIn json.RawMessage `json:"expires_in"`
		Uses      int             `json:"uses"`
	}
	if err := decodeStrict(r, &req, true); err != nil {
		return err
	}
	// A duration string only: a bare number would be nanoseconds in Caddy's
	// JSON, so "expires_in": 3600 would issue a token that is expired at once.
	var expiresIn caddy.Duration
	if len(req.ExpiresIn) > 0 && string(req.ExpiresIn) != "null" {
		if req.ExpiresIn[0] != '"' {
			return adminError(http.StatusBadRequest, `expires_in must be a duration string such as "24h" or "30m"`)
		}
		if err := json.Unmarshal(req.ExpiresIn, &expiresIn); err != nil {
			return adminError(http.StatusBadRequest, "expires_in: %v", err)
		}
		if expiresIn == 0 {
			// Written out, "0s" reads as "expires at once" as much as
			// "never"; a token that never expires is asked for by leaving
			// expires_in out.
			return adminError(http.StatusBadRequest, "expires_in %s is too short: at least 1s (leave expires_in out for a token that does not expire)", string(req.ExpiresIn))
		}
	}
	if expiresIn < 0 {
		return adminError(http.StatusBadRequest, "expires_in must not be negative")
	}
	if expiresIn > 0 && time.Duration(expiresIn) < time.Second {
		// Expired before anyone could use it, as the config's lifetimes
		// would be.
		return adminError(http.StatusBadRequest, "expires_in %s is too short: at least 1s", time.Duration(expiresIn))
	}
	if r, bad := registry.UnsafeDisplayRune(req.Name); bad {
		// Shown in listings and logs, as client names are.
		return adminError(http.StatusBadRequest, "name must not contain control characters, line separators or bidirectional overrides (found U+%04X)", r)
	}
	if req.Uses < 0 {
		return adminError(http.StatusBadRequest, "uses must not be negative")
	}
	tok, t, err := reg.IssueToken(r.Context(), req.Name, time.Duration(expiresIn), req.Uses)
	if err != nil {
		return adminError(http.StatusServiceUnavailable, "issuing token: %v", err)
	}
	changeLog(r).Info("initial access token issued", zap.String("token_id", t.ID), zap.String("name", t.Name),
		zap.Int("uses", t.Uses), zap.Duration("expires_in", time.Duration(expiresIn)), zap.String("by", "admin API"))
	v := viewToken(t)
	v.Token = tok
	w.Header().Set("Cache-Control", "no-store")
	return writeAdminJSON(w, http.StatusCreated, v)
}

type clientView struct {
	ClientID  string `json:"client_id"`
	API       string `json:"api"`
	Owner     string `json:"owner,omitempty"`
	Name      string `json:"client_name,omitempty"`
	CreatedAt int64  `json:"created_at"`
	Permitted bool   `json:"permitted"`
	Super     bool   `json:"super"`
	Plugin    bool   `json:"plugin"`
}

func viewClient(c *registry.Client) clientView {
	return clientView{ClientID: c.ID, API: c.API, Owner: c.Owner, Name: c.ClientName, CreatedAt: c.IssuedAt(),
		Permitted: c.Permitted, Super: c.Super, Plugin: c.IsPlugin()}
}

func (a AdminAPI) client(w http.ResponseWriter, r *http.Request, reg *registry.Registry, id string) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		c, err := reg.Peek(r.Context(), id)
		if errors.Is(err, registry.ErrNotFound) {
			return adminError(http.StatusNotFound, "no client %q", id)
		}
		if err != nil {
			return adminError(http.StatusServiceUnavailable, "reading client: %v", err)
		}
		return writeAdminJSON(w, http.StatusOK, viewClient(c))
	case http.MethodPatch:
		var req struct {
			Permitted *bool `json:"permitted"`
			Super     *bool `json:"super"`
		}
		if err := decodeStrict(r, &req, false); err != nil {
			return err
		}
		if req.Permitted == nil && req.Super == nil {
			return adminError(http.StatusBadRequest, `nothing to change: give "permitted" or "super" (true or false)`)
		}
		errPublic := errors.New("only confidential clients can be super clients")
		// A change to what the client has already is no write, and no
		// "changed" line in the log.
		errUnchanged := errors.New("unchanged")
		var same *registry.Client
		c, err := reg.Update(r.Context(), id, func(c *registry.Client) error {
			if req.Super != nil && *req.Super && !c.Confidential() {
				return errPublic
			}
			if (req.Super == nil || *req.Super == c.Super) && (req.Permitted == nil || *req.Permitted == c.Permitted) {
				same = c
				return errUnchanged
			}
			if req.Super != nil {
				c.Super = *req.Super
			}
			if req.Permitted != nil {
				c.Permitted = *req.Permitted
			}
			return nil
		})
		switch {
		case errors.Is(err, errUnchanged):
			return writeAdminJSON(w, http.StatusOK, viewClient(same))
		case errors.Is(err, registry.ErrNotFound):
			return adminError(http.StatusNotFound, "no client %q", id)
		case errors.Is(err, errPublic):
			return adminError(http.StatusBadRequest, "%v", err)
		case err != nil:
			return adminError(http.StatusServiceUnavailable, "updating client: %v", err)
		}
		changeLog(r).Info("client privileges changed", zap.String("api", c.API), zap.String("client_id", id),
			zap.Bool("permitted", c.Permitted), zap.Bool("super", c.Super), zap.String("by", "admin API"))
		return writeAdminJSON(w, http.StatusOK, viewClient(c))
	case http.MethodDelete:
		// The API is read from the record the delete reads anyway, so
		// the line names it like every other client line.
		var api string
		err := reg.Delete(r.Context(), id, func(c *registry.Client) error { api = c.API; return nil })
		if storage.Corrupt(err) {
			// A record that cannot be read is the operator's to remove,
			// and this is where an operator removes clients.
			if err = reg.Purge(r.Context(), id); err == nil {
				changeLog(r).Warn("client with a damaged record deleted", zap.String("client_id", id), zap.String("by", "admin API"))
				w.WriteHeader(http.StatusNoContent)
				return nil
			}
		}
		switch {
		case errors.Is(err, registry.ErrNotFound):
			return adminError(http.StatusNotFound, "no client %q", id)
		case err != nil:
			return adminError(http.StatusServiceUnavailable, "deleting client: %v", err)
		}
		changeLog(r).Info("client deleted", zap.String("api", api), zap.String("client_id", id), zap.String("by", "admin API"))
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	return methodNotAllowed(w, http.MethodGet, http.MethodHead, http.MethodPatch, http.MethodDelete)
}

// clientMetadata answers what an authorization server needs to know of a
// client: its id, when it was issued and when its secret expires, and its
// RFC 7591 metadata (redirect URIs, grant types, authentication method,
// keys, scope...), as a registration response has them, without any
// credential. It counts as a use of the client (idle_lifetime).
func (a AdminAPI) clientMetadata(w http.ResponseWriter, r *http.Request, reg *registry.Registry, id string) error {
	c, used, err := lookupClient(r.Context(), reg, id)
	if err != nil {
		return err
	}
	if used != nil {
		used()
	}
	jw := jsonw.Get(jsonw.Compact)
	defer jw.Release()
	jw.Open()
	jw.Key("client_id").Str(c.ID)
	jw.Key("client_id_issued_at").Int(c.IssuedAt())
	if c.Confidential() {
		jw.Key("client_secret_expires_at").Int(c.SecretExpiresAt)
	}
	handler.WriteMetadata(jw, c)
	jw.Key("api").Str(c.API)
	jw.OptStr("owner", c.Owner)
	jw.Key("permitted").Bool(c.Permitted)
	jw.Close()
	w.Header().Set("Content-Type", "application/json")
	_, err = w.Write(append(jw.B, '\n'))
	return err
}

// lookupClient reads a client for the admin API, with the function that
// counts a use of it under the idle lifetime of a handler of the API it was
// registered with (nil when there is none), to call once the use is real.
func lookupClient(ctx context.Context, reg *registry.Registry, id string) (*registry.Client, func(), error) {
	c, used, err := reg.Lookup(ctx, id)
	if errors.Is(err, registry.ErrNotFound) {
		return nil, nil, adminError(http.StatusNotFound, "no client %q", id)
	}
	if err != nil {
		return nil, nil, adminError(http.StatusServiceUnavailable, "reading client: %v", err)
	}
	return c, used, nil
}

// verifySecret checks a client secret for an authorization server's token
// endpoint ({"client_secret": "..."}): 200 with {"valid": true}, or
// {"valid": false, "reason": ...} (no_secret for a public client,
// mismatch, expired); the comparison is in constant time. A valid secret
// counts as a use of the client.
func (a AdminAPI) verifySecret(w http.ResponseWriter, r *http.Request, reg *registry.Registry, id string) error {
	var req struct {
		Secret *string `json:"client_secret"`
	}
	if err := decodeStrict(r, &req, false); err != nil {
		return err
	}
	if req.Secret == nil {
		return adminError(http.StatusBadRequest, "client_secret is required")
	}
	c, used, err := lookupClient(r.Context(), reg, id)
	if err != nil {
		return err
	}
	reason := ""
	switch {
	case !c.Confidential():
		reason = "no_secret"
	case !registry.Verify(c.SecretHash, *req.Secret):
		reason = "mismatch"
	case c.SecretExpired(reg.Now()):
		reason = "expired"
	}
	w.Header().Set("Cache-Control", "no-store")
	if reason != "" {
		return writeAdminJSON(w, http.StatusOK, verifyAnswer{Reason: reason})
	}
	if used != nil {
		used() // only a secret that verified is a use: a wrong one from anyone must not keep the client alive
	}
	return writeAdminJSON(w, http.StatusOK, verifyAnswer{Valid: true})
}

// verifyAnswer is verify_secret's answer: "valid" first, as documented (a
// map would sort "reason" before it).
type verifyAnswer struct {
	Valid  bool   `json:"valid"`
	Reason string `json:"reason,omitempty"`
}

// listClients answers the summaries of the store's clients, or of one
// owner's (?owner=), of one API's (?api=), oldest first.
func (a AdminAPI) listClients(w http.ResponseWriter, r *http.Request, reg *registry.Registry) error {
	q := r.URL.Query()
	for _, k := range []string{"owner", "api"} {
		if len(q[k]) > 1 {
			return adminError(http.StatusBadRequest, "%s given %d times: one value only", k, len(q[k]))
		}
	}
	tag := registry.TagClients
	if q.Has("owner") {
		if q.Get("owner") == "" {
			return adminError(http.StatusBadRequest, "owner must not be empty (clients registered by nobody in particular have none)")
		}
		tag = registry.OwnerTag(q.Get("owner"))
	}
	api := q.Get("api")
	if q.Has("api") && !slices.Contains(apiNames, api) {
		return adminError(http.StatusBadRequest, "unknown api %q: one of %s", api, strings.Join(apiNames, ", "))
	}
	clients, err := reg.List(r.Context(), tag)
	if err != nil {
		return adminError(http.StatusServiceUnavailable, "listing clients: %v", err)
	}
	// By the millisecond of registration, which created_at rounds off.
	sort.Slice(clients, func(i, j int) bool {
		if clients[i].CreatedMs != clients[j].CreatedMs {
			return clients[i].CreatedMs < clients[j].CreatedMs
		}
		return clients[i].ID < clients[j].ID
	})
	out := make([]clientView, 0, len(clients))
	for _, c := range clients {
		if api == "" || c.API == api {
			out = append(out, viewClient(c))
		}
	}
	return writeAdminJSON(w, http.StatusOK, out)
}

var _ caddy.AdminRouter = AdminAPI{}

// adminMaxBody bounds an admin request body.
const adminMaxBody = 64 << 10

// decodeStrict decodes the request body (at most adminMaxBody), one JSON object,
// into v, refusing members v does not have (as Caddy's own config loading
// does): a misspelt "permited" or "expire_in" would otherwise succeed and
// do nothing, or do something else. With emptyOK, an empty body leaves v
// as it is.
func decodeStrict(r *http.Request, v any, emptyOK bool) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, adminMaxBody+1))
	if err != nil {
		return adminError(http.StatusBadRequest, "reading body: %v", err)
	}
	if len(body) > adminMaxBody {
		// Cut off, it would fail to decode with a message about its end.
		return adminError(http.StatusRequestEntityTooLarge, "the body is larger than %d bytes", adminMaxBody)
	}
	if emptyOK && len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return adminError(http.StatusBadRequest, "decoding body: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		// A second value, or a stray "}" (which More does not see).
		return adminError(http.StatusBadRequest, "decoding body: more than one JSON value")
	}
	return nil
}
