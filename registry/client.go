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

// Client is a registered OAuth client as stored. Secrets and registration
// access tokens are kept only as hashes (see Hash).
type Client struct {
	ID    string `json:"id"`
	API   string `json:"api"`
	Owner string `json:"owner,omitempty"`
	// CreatedMs and UpdatedMs are Unix milliseconds.
	CreatedMs int64 `json:"created_ms"`
	UpdatedMs int64 `json:"updated_ms,omitempty"`

	SecretHash string `json:"secret_hash,omitempty"`
	// SecretExpiresAt is Unix seconds; 0 means the secret never expires.
	SecretExpiresAt int64  `json:"secret_expires_at,omitempty"`
	RATHash         string `json:"rat_hash,omitempty"`

	// RFC 7591 (and OpenID Connect) metadata.
	RedirectURIs            []string          `json:"redirect_uris,omitempty"`
	TokenEndpointAuthMethod string            `json:"token_endpoint_auth_method,omitempty"`
	GrantTypes              []string          `json:"grant_types,omitempty"`
	ResponseTypes           []string          `json:"response_types,omitempty"`
	ApplicationType         string            `json:"application_type,omitempty"`
	ClientName              string            `json:"client_name,omitempty"`
	ClientURI               string            `json:"client_uri,omitempty"`
	LogoURI                 string            `json:"logo_uri,omitempty"`
	TOSURI                  string            `json:"tos_uri,omitempty"`
	PolicyURI               string            `json:"policy_uri,omitempty"`
	JWKSURI                 string            `json:"jwks_uri,omitempty"`
	JWKS                    json.RawMessage   `json:"jwks,omitempty"`
	Scope                   string            `json:"scope,omitempty"`
	Contacts                []string          `json:"contacts,omitempty"`
	SoftwareID              string            `json:"software_id,omitempty"`
	SoftwareVersion         string            `json:"software_version,omitempty"`
	SoftwareStatement       string            `json:"software_statement,omitempty"`
	Localized               map[string]string `json:"localized,omitempty"` // "client_name#ja-Jpan-JP" -> value

	// Kustvakt's additions.
	Description        string          `json:"description,omitempty"`
	RefreshTokenExpiry int64           `json:"refresh_token_expiry,omitempty"`
	Source             json.RawMessage `json:"source,omitempty"` // marks a plugin
	Permitted          bool            `json:"permitted,omitempty"`
	Super              bool            `json:"super,omitempty"`
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
