package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/caddy-dcr/caddy-dcr/storage"
)

// Initial access tokens (RFC 7591 section 3) issued at run time, as
// Keycloak does: each has an expiry and a number of uses, and is stored
// only as a hash. Static tokens from the configuration never reach the store.

// InitialAccessToken describes a token; the token itself is never stored.
type InitialAccessToken struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
	// Hash is the token's hash; it is also the record's key.
	Hash      string `json:"hash"`
	CreatedMs int64  `json:"created_ms"`
	// ExpiresMs is Unix milliseconds; 0 means never.
	ExpiresMs int64 `json:"expires_ms,omitempty"`
	// Uses is how many registrations the token allows; 0 means unlimited.
	Uses int `json:"uses,omitempty"`
	// Used is how many registrations it made.
	Used int `json:"used"`
	// RecentUses names the latest uses counted (at most maxRecentUses),
	// so that counting a use and giving it back can each be repeated: a
	// give-back tried again after a failure, or one that follows a count
	// whose answer was lost (it may or may not have been made), must give
	// back only a use that was counted, and only once.
	RecentUses []string `json:"recent_uses,omitempty"`
}

// maxRecentUses bounds RecentUses. A use pushed out of it by as many later
// ones before its give-back is not given back: the token loses a use
// rather than allowing one more than it should.
const maxRecentUses = 64

// NewUseID names one use of an initial access token (see UseToken).
func NewUseID() string { return randomID(9) }

// TokenOwnerPrefix starts the owner of every client registered with an
// initial access token. No user is ever called that (the handlers treat a
// user name with it as no user), so a token's clients cannot be taken for a
// user's, nor a user's for a token's.
const TokenOwnerPrefix = "token:"

// Owner is how clients registered with the token record their owner.
func (t *InitialAccessToken) Owner() string { return TokenOwnerPrefix + t.ID }

// Exhausted reports whether no use is left.
func (t *InitialAccessToken) Exhausted() bool { return t.Uses > 0 && t.Used >= t.Uses }

const (
	iatPrefix = "t/"
	tagIATs   = "initial_access_tokens"
)

// ErrTokenInvalid means the initial access token is unknown, expired or used up.
var ErrTokenInvalid = errors.New("initial access token invalid, expired or used up")

// IssueToken creates an initial access token valid for ttl (0: no expiry)
// and uses registrations (0: unlimited). It returns the token: the only
// plain-text copy.
func (r *Registry) IssueToken(ctx context.Context, name string, ttl time.Duration, uses int) (string, *InitialAccessToken, error) {
	now := r.Now()
	tok := randomBase64(32)
	t := &InitialAccessToken{ID: randomID(9), Name: name, Hash: Hash(tok), CreatedMs: now.UnixMilli(), Uses: uses}
	rec := &storage.Record{ID: iatPrefix + t.Hash, Tags: []string{tagIATs}}
	if ttl > 0 {
		rec.ExpiresAt = now.Add(ttl)
		t.ExpiresMs = rec.ExpiresAt.UnixMilli()
	}
	b, err := json.Marshal(t)
	if err != nil {
		return "", nil, fmt.Errorf("encoding token: %w", err)
	}
	rec.Data, rec.FreshID = b, true
	if err := r.Store.Create(ctx, rec); err != nil {
		return "", nil, err
	}
	return tok, t, nil
}

func (r *Registry) getToken(ctx context.Context, token string) (*InitialAccessToken, *storage.Record, error) {
	rec, err := r.Store.Get(ctx, iatPrefix+Hash(token))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil, ErrTokenInvalid
	}
	if err != nil {
		return nil, nil, err
	}
	var t InitialAccessToken
	if err := json.Unmarshal(rec.Data, &t); err != nil {
		return nil, nil, &storage.UnavailableError{Op: "decode", Err: fmt.Errorf("token record: %w", err)}
	}
	return &t, rec, nil
}

// CheckToken returns the token's description if it may still be used.
func (r *Registry) CheckToken(ctx context.Context, token string) (*InitialAccessToken, error) {
	t, _, err := r.getToken(ctx, token)
	if err != nil {
		return nil, err
	}
	if t.Exhausted() {
		return nil, ErrTokenInvalid
	}
	return t, nil
}

// UseToken counts the use named use (NewUseID) of the token, atomically:
// of two concurrent requests for its last use, one gets ErrTokenInvalid.
// Counting a use already counted changes nothing. Uses of a token without
// a limit are counted too, for the admin API's listing, but only as well
// as contention allows: no registration fails because the count could not
// be written.
func (r *Registry) UseToken(ctx context.Context, token, use string) error {
	return r.updateUses(ctx, token, func(t *InitialAccessToken) (bool, error) {
		if slices.Contains(t.RecentUses, use) {
			return false, nil
		}
		if t.Exhausted() {
			return false, ErrTokenInvalid
		}
		t.Used++
		t.RecentUses = append(t.RecentUses, use)
		if n := len(t.RecentUses); n > maxRecentUses {
			t.RecentUses = slices.Delete(t.RecentUses, 0, n-maxRecentUses)
		}
		return true, nil
	})
}

// ReturnTokenUse gives back the use named use, for a registration that
// failed after UseToken, or whose UseToken failed without saying whether
// the count was made. A use that was not counted, or was given back
// already, is left alone, so a give-back can be tried until it succeeds.
func (r *Registry) ReturnTokenUse(ctx context.Context, token, use string) error {
	err := r.updateUses(ctx, token, func(t *InitialAccessToken) (bool, error) {
		i := slices.Index(t.RecentUses, use)
		if i < 0 {
			return false, nil
		}
		t.RecentUses = slices.Delete(t.RecentUses, i, i+1)
		t.Used = max(t.Used-1, 0)
		return true, nil
	})
	if errors.Is(err, ErrTokenInvalid) {
		return nil // revoked or expired meanwhile: nothing to give back to
	}
	return err
}

// updateUses applies change to the token's record, again on a newer
// version when another request changed it meanwhile; change reports
// whether there is anything to write.
func (r *Registry) updateUses(ctx context.Context, token string, change func(*InitialAccessToken) (bool, error)) error {
	var retry conflictRetry
	for {
		t, rec, err := r.getToken(ctx, token)
		if err != nil {
			return err
		}
		write, err := change(t)
		if err != nil || !write {
			return err
		}
		b, _ := json.Marshal(t)
		next := *rec
		next.Data = b
		err = r.Store.Update(ctx, rec, &next)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, storage.ErrNotFound):
			return ErrTokenInvalid
		case errors.Is(err, storage.ErrConflict) && retry.again():
			continue
		case errors.Is(err, storage.ErrConflict) && t.Uses == 0:
			return nil // unlimited: nothing is enforced by the count
		}
		return err
	}
}

// Tokens lists the live initial access tokens, oldest first.
func (r *Registry) Tokens(ctx context.Context) ([]*InitialAccessToken, error) {
	recs, err := r.Store.List(ctx, tagIATs)
	if err != nil {
		return nil, err
	}
	out := make([]*InitialAccessToken, 0, len(recs))
	for _, rec := range recs {
		var t InitialAccessToken
		if err := json.Unmarshal(rec.Data, &t); err != nil {
			return nil, &storage.UnavailableError{Op: "decode", Err: fmt.Errorf("token record: %w", err)}
		}
		out = append(out, &t)
	}
	slices.SortFunc(out, func(a, b *InitialAccessToken) int { return int(a.CreatedMs - b.CreatedMs) })
	return out, nil
}

// RevokeToken deletes the token with this id. A registration counting a
// use of the token at the same moment changes its revision; the delete is
// then tried again on the new one rather than failing.
func (r *Registry) RevokeToken(ctx context.Context, id string) error {
	var retry conflictRetry
	for {
		recs, err := r.Store.List(ctx, tagIATs)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(recs, func(rec *storage.Record) bool {
			var t InitialAccessToken
			return json.Unmarshal(rec.Data, &t) == nil && t.ID == id
		})
		if i < 0 {
			return ErrNotFound
		}
		err = r.Store.Delete(ctx, recs[i])
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return ErrNotFound
		case errors.Is(err, storage.ErrConflict) && retry.again():
			continue
		}
		return err
	}
}
