// Package registry is caddy-dcr's domain: the one client model every API
// shares, its validation, credential generation and hashing, and the service
// that keeps clients in a storage.Store. The HTTP front doors in handler/
// only translate their wire formats to and from this package.
package registry

import (
	"encoding/json"
	"time"
)

// API names: the front door a client was registered through.
const (
	APIRFC7591     = "rfc7591"
	APIMediaGoblin = "mediagoblin"
	APIKustvakt    = "kustvakt"
	APIIAM         = "iam"
)

// Token endpoint authentication methods this server knows.
const (
	AuthNone              = "none"
	AuthClientSecretBasic = "client_secret_basic"
	AuthClientSecretPost  = "client_secret_post"
	AuthClientSecretJWT   = "client_secret_jwt"
	AuthPrivateKeyJWT     = "private_key_jwt"
)

// Client is a registered OAuth client. Secrets and registration access
// tokens are kept only as hashes (see Hash); codec.go is its stored form.
type Client struct {
	ID    string
	API   string
	Owner string
	// CreatedMs and UpdatedMs are Unix milliseconds.
	CreatedMs int64
	UpdatedMs int64

	SecretHash string
	// SecretExpiresAt is Unix seconds; 0 means the secret never expires.
	SecretExpiresAt int64
	// EndsAt is the client's fixed end (Unix seconds) under its API's
	// client_lifetime, as last worked out; 0 for none. A Caddy that runs
	// no handler of the client's API does not know that lifetime, and
	// still ends a secret it issues with the client (see SecretExpiry).
	EndsAt  int64
	RATHash string
	// PriorRATHash is the registration access token an RFC 7592 update was
	// made with. From PriorRATFrom to PriorRATUntil (Unix ms) it is still
	// accepted, because the update's answer, carrying the new token, may
	// not have reached the client: a write answered 503 can still be
	// carried out by a stalled store, and a client holding only its old
	// token would be locked out of its registration. An update that is
	// answered retires it first (see RotateRAT, RetirePriorRAT and
	// RestorePriorRAT).
	PriorRATHash  string
	PriorRATFrom  int64
	PriorRATUntil int64
	// SecretUndelivered reports that the client's secret was issued by an
	// update whose answer may not have reached the client: the next update
	// issues another one.
	SecretUndelivered bool

	// RFC 7591 (and OpenID Connect) metadata.
	RedirectURIs            []string
	TokenEndpointAuthMethod string
	// TokenEndpointAuthSigningAlg is the one JWS algorithm the client's
	// authentication JWTs (client_secret_jwt, private_key_jwt) may use
	// (OpenID Connect Dynamic Client Registration; in RFC 7591's IANA
	// registry): "" means any the server publishes.
	TokenEndpointAuthSigningAlg string
	GrantTypes                  []string
	ResponseTypes               []string
	ApplicationType             string
	ClientName                  string
	ClientURI                   string
	LogoURI                     string
	TOSURI                      string
	PolicyURI                   string
	JWKSURI                     string
	JWKS                        json.RawMessage
	Scope                       string
	Contacts                    []string
	SoftwareID                  string
	SoftwareVersion             string
	SoftwareStatement           string
	Localized                   map[string]string // "client_name#ja-Jpan-JP" -> value

	// Kustvakt's additions.
	Description        string
	RefreshTokenExpiry int64
	Source             json.RawMessage // marks a plugin
	Permitted          bool
	Super              bool
}

// Confidential reports whether the client authenticates with a secret.
func (c *Client) Confidential() bool { return c.SecretHash != "" }

// IsPlugin reports whether the client is a Kustvakt plugin.
func (c *Client) IsPlugin() bool { return len(c.Source) > 0 }

// Created returns the registration time.
func (c *Client) Created() time.Time { return time.UnixMilli(c.CreatedMs) }

// IssuedAt returns client_id_issued_at (Unix seconds).
func (c *Client) IssuedAt() int64 { return c.CreatedMs / 1000 }

// PriorRATLifetime bounds how long the token an update was made with stays
// valid when the update is not known to have been answered.
const PriorRATLifetime = time.Hour

// CheckRAT reports whether tok is the client's registration access token at
// now, and whether it is the prior one of an update whose answer may have
// been lost (see PriorRATHash).
func (c *Client) CheckRAT(tok string, now time.Time) (ok, prior bool) {
	ok, prior, _ = c.RATState(tok, now)
	return ok, prior
}

// RATState is CheckRAT, and also how long until tok is accepted when it is
// the prior token of an update but not accepted yet (pending; 0 otherwise):
// until then that update may still be answered, and whether tok is
// superseded is not known. Each hash is verified once.
func (c *Client) RATState(tok string, now time.Time) (ok, prior bool, pending time.Duration) {
	if Verify(c.RATHash, tok) {
		return true, false, 0
	}
	ms := now.UnixMilli()
	if c.PriorRATHash == "" || ms >= c.PriorRATUntil || !Verify(c.PriorRATHash, tok) {
		return false, false, 0
	}
	if ms < c.PriorRATFrom {
		return false, false, time.Duration(c.PriorRATFrom-ms) * time.Millisecond
	}
	return true, true, 0
}

// RotateRAT makes rat the client's registration access token. presented,
// the token the update is made with, is accepted again from delay after now
// until PriorRATLifetime after now, unless RetirePriorRAT retires it first.
// delay should exceed the time an update takes to be answered (the
// store's timeout), so that requests racing an update with the same token
// wait for it (RATState's pending) rather than succeed too.
func (c *Client) RotateRAT(rat, presented string, now time.Time, delay time.Duration) {
	c.RATHash = Hash(rat)
	c.PriorRATHash = Hash(presented)
	c.PriorRATFrom = now.Add(delay).UnixMilli()
	c.PriorRATUntil = now.Add(PriorRATLifetime).UnixMilli()
}

// RetirePriorRAT ends the validity of the prior token and marks the secret
// delivered: the update that rotated them is about to be answered.
func (c *Client) RetirePriorRAT() {
	c.PriorRATHash, c.PriorRATFrom, c.PriorRATUntil, c.SecretUndelivered = "", 0, 0, false
}

// RestorePriorRAT makes the prior token the client's token again: the
// client presented it, so it never got the token that replaced it.
// SecretUndelivered is kept, for the next update to issue a secret.
func (c *Client) RestorePriorRAT() {
	c.RATHash = c.PriorRATHash
	c.PriorRATHash, c.PriorRATFrom, c.PriorRATUntil = "", 0, 0
}

// SetSecret gives the client secret as its secret, expiring at expiresAt
// (Unix seconds, 0 for never), for a request that answers with it. Any
// secret an update issued before, whose answer may have been lost
// (SecretUndelivered), is replaced by this one, which the next update
// must not replace in turn: the mark is cleared.
func (c *Client) SetSecret(secret string, expiresAt int64) {
	c.SecretHash, c.SecretExpiresAt, c.SecretUndelivered = Hash(secret), expiresAt, false
}

// RevokeRATs leaves the client with no valid registration access token.
func (c *Client) RevokeRATs() {
	c.RATHash = ""
	c.PriorRATHash, c.PriorRATFrom, c.PriorRATUntil = "", 0, 0
}

// NeedsSecret reports whether an authentication method uses a client secret.
func NeedsSecret(method string) bool {
	switch method {
	case AuthClientSecretBasic, AuthClientSecretPost, AuthClientSecretJWT:
		return true
	}
	return false
}

// SecretExpired reports whether the client's secret has expired at now.
// The secret is good through the second client_secret_expires_at names:
// that second is the issue time plus the lifetime with the fraction of the
// issue second dropped (IAM's 90 days are 7,776,000 s after
// client_id_issued_at), so expiring at its start would cut up to a second
// off every lifetime, most of a 1 s one.
func (c *Client) SecretExpired(now time.Time) bool {
	return c.SecretExpiresAt != 0 && now.Unix() > c.SecretExpiresAt
}

// ReplaceMetadata replaces the client's RFC 7591 metadata with m's, keeping
// what only the server sets (id, owner, timestamps, credentials) and the
// fields of the other APIs. RFC 7592 updates are full replacements.
func (c *Client) ReplaceMetadata(m *Client) {
	c.RedirectURIs = m.RedirectURIs
	c.TokenEndpointAuthMethod = m.TokenEndpointAuthMethod
	c.TokenEndpointAuthSigningAlg = m.TokenEndpointAuthSigningAlg
	c.GrantTypes = m.GrantTypes
	c.ResponseTypes = m.ResponseTypes
	c.ApplicationType = m.ApplicationType
	c.ClientName = m.ClientName
	c.ClientURI = m.ClientURI
	c.LogoURI = m.LogoURI
	c.TOSURI = m.TOSURI
	c.PolicyURI = m.PolicyURI
	c.JWKSURI = m.JWKSURI
	c.JWKS = m.JWKS
	c.Scope = m.Scope
	c.Contacts = m.Contacts
	c.SoftwareID = m.SoftwareID
	c.SoftwareVersion = m.SoftwareVersion
	c.SoftwareStatement = m.SoftwareStatement
	c.Localized = m.Localized
}
