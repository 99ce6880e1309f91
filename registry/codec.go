package registry

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// Clients are stored in a small binary format rather than JSON: encoding
// and decoding a record is on every request's path, and reflection-based
// JSON was a tenth of a read's cost. The format is a version byte, then
// fields as (number, length, payload), so a later version can add fields
// that an older one skips.

const codecVersion = 1

// Field numbers. Never reuse one.
const (
	fID = iota + 1
	fAPI
	fOwner
	fCreatedMs
	fUpdatedMs
	fSecretHash
	fSecretExpiresAt
	fRATHash
	fRedirectURIs
	fAuthMethod
	fGrantTypes
	fResponseTypes
	fApplicationType
	fClientName
	fClientURI
	fLogoURI
	fTOSURI
	fPolicyURI
	fJWKSURI
	fJWKS
	fScope
	fContacts
	fSoftwareID
	fSoftwareVersion
	fSoftwareStatement
	fLocalized
	fDescription
	fRefreshTokenExpiry
	fSource
	fPermitted
	fSuper
)

type encoder struct{ b []byte }

func (e *encoder) field(n int, payload []byte) {
	e.b = binary.AppendUvarint(e.b, uint64(n))
	e.b = binary.AppendUvarint(e.b, uint64(len(payload)))
	e.b = append(e.b, payload...)
}

func (e *encoder) str(n int, s string) {
	if s == "" {
		return
	}
	e.b = binary.AppendUvarint(e.b, uint64(n))
	e.b = binary.AppendUvarint(e.b, uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) int(n int, v int64) {
	if v == 0 {
		return
	}
	var buf [binary.MaxVarintLen64]byte
	e.field(n, binary.AppendVarint(buf[:0], v))
}

func (e *encoder) bool(n int, v bool) {
	if v {
		e.field(n, []byte{1})
	}
}

func (e *encoder) strs(n int, list []string) {
	if len(list) == 0 {
		return
	}
	var p []byte
	for _, s := range list {
		p = binary.AppendUvarint(p, uint64(len(s)))
		p = append(p, s...)
	}
	e.field(n, p)
}

// encodeClient returns the stored form of c.
func encodeClient(c *Client) []byte {
	e := encoder{b: make([]byte, 0, 512)}
	e.b = append(e.b, codecVersion)
	e.str(fID, c.ID)
	e.str(fAPI, c.API)
	e.str(fOwner, c.Owner)
	e.int(fCreatedMs, c.CreatedMs)
	e.int(fUpdatedMs, c.UpdatedMs)
	e.str(fSecretHash, c.SecretHash)
	e.int(fSecretExpiresAt, c.SecretExpiresAt)
	e.str(fRATHash, c.RATHash)
	e.strs(fRedirectURIs, c.RedirectURIs)
	e.str(fAuthMethod, c.TokenEndpointAuthMethod)
	e.strs(fGrantTypes, c.GrantTypes)
	e.strs(fResponseTypes, c.ResponseTypes)
	e.str(fApplicationType, c.ApplicationType)
	e.str(fClientName, c.ClientName)
	e.str(fClientURI, c.ClientURI)
	e.str(fLogoURI, c.LogoURI)
	e.str(fTOSURI, c.TOSURI)
	e.str(fPolicyURI, c.PolicyURI)
	e.str(fJWKSURI, c.JWKSURI)
	e.str(fJWKS, string(c.JWKS))
	e.str(fScope, c.Scope)
	e.strs(fContacts, c.Contacts)
	e.str(fSoftwareID, c.SoftwareID)
	e.str(fSoftwareVersion, c.SoftwareVersion)
	e.str(fSoftwareStatement, c.SoftwareStatement)
	if len(c.Localized) > 0 {
		keys := make([]string, 0, len(c.Localized))
		for k := range c.Localized {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		pairs := make([]string, 0, 2*len(keys))
		for _, k := range keys {
			pairs = append(pairs, k, c.Localized[k])
		}
		e.strs(fLocalized, pairs)
	}
	e.str(fDescription, c.Description)
	e.int(fRefreshTokenExpiry, c.RefreshTokenExpiry)
	e.str(fSource, string(c.Source))
	e.bool(fPermitted, c.Permitted)
	e.bool(fSuper, c.Super)
	return e.b
}

var errCorrupt = errors.New("corrupt client record")

// decodeStrs reads a list field's payload.
func decodeStrs(p []byte) ([]string, error) {
	var out []string
	for len(p) > 0 {
		n, k := binary.Uvarint(p)
		if k <= 0 || uint64(len(p)-k) < n {
			return nil, errCorrupt
		}
		out = append(out, string(p[k:k+int(n)]))
		p = p[k+int(n):]
	}
	return out, nil
}

// decodeClient reads a stored client.
func decodeClient(b []byte) (*Client, error) {
	if len(b) == 0 || b[0] != codecVersion {
		return nil, fmt.Errorf("%w: unknown format", errCorrupt)
	}
	b = b[1:]
	c := &Client{}
	for len(b) > 0 {
		num, k := binary.Uvarint(b)
		if k <= 0 {
			return nil, errCorrupt
		}
		b = b[k:]
		n, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < n {
			return nil, errCorrupt
		}
		p := b[k : k+int(n)]
		b = b[k+int(n):]
		var err error
		switch num {
		case fID:
			c.ID = string(p)
		case fAPI:
			c.API = string(p)
		case fOwner:
			c.Owner = string(p)
		case fCreatedMs:
			c.CreatedMs, err = varint(p)
		case fUpdatedMs:
			c.UpdatedMs, err = varint(p)
		case fSecretHash:
			c.SecretHash = string(p)
		case fSecretExpiresAt:
			c.SecretExpiresAt, err = varint(p)
		case fRATHash:
			c.RATHash = string(p)
		case fRedirectURIs:
			c.RedirectURIs, err = decodeStrs(p)
		case fAuthMethod:
			c.TokenEndpointAuthMethod = string(p)
		case fGrantTypes:
			c.GrantTypes, err = decodeStrs(p)
		case fResponseTypes:
			c.ResponseTypes, err = decodeStrs(p)
		case fApplicationType:
			c.ApplicationType = string(p)
		case fClientName:
			c.ClientName = string(p)
		case fClientURI:
			c.ClientURI = string(p)
		case fLogoURI:
			c.LogoURI = string(p)
		case fTOSURI:
			c.TOSURI = string(p)
		case fPolicyURI:
			c.PolicyURI = string(p)
		case fJWKSURI:
			c.JWKSURI = string(p)
		case fJWKS:
			c.JWKS = slices.Clone(p)
		case fScope:
			c.Scope = string(p)
		case fContacts:
			c.Contacts, err = decodeStrs(p)
		case fSoftwareID:
			c.SoftwareID = string(p)
		case fSoftwareVersion:
			c.SoftwareVersion = string(p)
		case fSoftwareStatement:
			c.SoftwareStatement = string(p)
		case fLocalized:
			var pairs []string
			pairs, err = decodeStrs(p)
			if err == nil && len(pairs)%2 == 0 {
				c.Localized = make(map[string]string, len(pairs)/2)
				for i := 0; i < len(pairs); i += 2 {
					c.Localized[pairs[i]] = pairs[i+1]
				}
			}
		case fDescription:
			c.Description = string(p)
		case fRefreshTokenExpiry:
			c.RefreshTokenExpiry, err = varint(p)
		case fSource:
			c.Source = slices.Clone(p)
		case fPermitted:
			c.Permitted = len(p) == 1 && p[0] == 1
		case fSuper:
			c.Super = len(p) == 1 && p[0] == 1
		default:
			// A field of a later version: skipped.
		}
		if err != nil {
			return nil, err
		}
	}
	return c, nil
}

func varint(p []byte) (int64, error) {
	v, k := binary.Varint(p)
	if k <= 0 || k != len(p) {
		return 0, errCorrupt
	}
	return v, nil
}
