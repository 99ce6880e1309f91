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
	RATHash         string

	// RFC 7591 (and OpenID Connect) metadata.
	RedirectURIs            []string
	TokenEndpointAuthMethod string
	GrantTypes              []string
	ResponseTypes           []string
	ApplicationType         string
	ClientName              string
	ClientURI               string
	LogoURI                 string
	TOSURI                  string
	PolicyURI               string
	JWKSURI                 string
	JWKS                    json.RawMessage
	Scope                   string
	Contacts                []string
	SoftwareID              string
	SoftwareVersion         string
	SoftwareStatement       string
	Localized               map[string]string // "client_name#ja-Jpan-JP" -> value

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

// NeedsSecret reports whether an authentication method uses a client secret.
func NeedsSecret(method string) bool {
	switch method {
	case AuthClientSecretBasic, AuthClientSecretPost, AuthClientSecretJWT:
		return true
	}
	return false
}

// SecretExpired reports whether the client's secret has expired at now.
func (c *Client) SecretExpired(now time.Time) bool {
	return c.SecretExpiresAt != 0 && now.Unix() >= c.SecretExpiresAt
}

// ReplaceMetadata replaces the client's RFC 7591 metadata with m's, keeping
// what only the server sets (id, owner, timestamps, credentials) and the
// fields of the other APIs. RFC 7592 updates are full replacements.
func (c *Client) ReplaceMetadata(m *Client) {
	c.RedirectURIs = m.RedirectURIs
	c.TokenEndpointAuthMethod = m.TokenEndpointAuthMethod
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
